"""Where a bandit policy loses on llmrouter-9: score, cost and picks per model in successive stretches of one stream.

    LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/peers/phases.py DIAL \
        [POLICY] ['{json settings}'] [SEED] [FEEDBACK: bandit | full]
"""

from __future__ import annotations

import json
import sys

import numpy as np
from threadpoolctl import threadpool_limits

from compare import DEFAULT_ENCODER, Router, load_table, vectors_of  # noqa: I001
from bandit_router.evaluation.embeddings import lookup_encoder
from bandit_router.evaluation.replay import replay


def main(dial: float, policy: str = "hierlin", settings: str = "{}", seed: int = 0, feedback: str = "bandit") -> None:
    table = load_table("/work/shared/data/llmrouter-9")
    ref = table.costs[:, table.best].mean()
    router = Router(table.model_cards(), policy=policy, policy_settings=json.loads(settings),
                    encoder=lookup_encoder(table, vectors_of(table), DEFAULT_ENCODER), seed=seed)
    with threadpool_limits(1):
        run = replay(table, router, dial, seed, feedback=feedback)
    print("picks per model, in the order:", ", ".join(table.models))
    for a, b in ((0, 1000), (1000, 2000), (2000, 4000), (4000, len(run.score))):
        print(f"prompts {a}-{b}: {run.score[a:b].mean():.3f} @ {100 * run.cost[a:b].mean() / ref:.0f}%  picks",
              np.bincount(run.chosen[a:b], minlength=len(table.models)).tolist())
    print(f"whole stream: {run.mean_score:.3f} @ {100 * run.mean_cost / ref:.0f}%")


if __name__ == "__main__":
    main(float(sys.argv[1]), *sys.argv[2:4], *(int(s) for s in sys.argv[4:5]), *sys.argv[5:6])

"""Replay a routing table through LiteLLMAdaptivePeer (online, bandit feedback on the chosen model only).

Usage: .venv/bin/python benchmarks/peers/check_litellm_adaptive.py [DATA_DIR ...]
(default: /work/shared/data/llmrouter-9). For each seed 0,1,2 the prompts are shuffled with
np.random.default_rng(seed).permutation and streamed once; reported: mean score and mean cost as % of the
best single model's mean cost (best = highest mean score), per q/c weight pair, mean over seeds.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.peers.litellm_adaptive import LiteLLMAdaptivePeer  # noqa: E402

WEIGHTS = [(1.0, 0.0), (0.95, 0.05), (0.9, 0.1), (0.8, 0.2)]
SEEDS = [0, 1, 2]


def load(data_dir: Path) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Return prompt texts, model names, score[n, m], cost[n, m]; drops prompts missing any model's row."""
    prompts = pd.read_csv(data_dir / "prompts.csv", dtype={"prompt_id": str}, keep_default_na=False)
    out = pd.read_csv(data_dir / "outcomes.csv", dtype={"prompt_id": str, "model": str})
    models = sorted(out["model"].unique())
    score = out.pivot(index="prompt_id", columns="model", values="score").reindex(columns=models)
    cost = out.pivot(index="prompt_id", columns="model", values="cost").reindex(columns=models)
    complete = score.notna().all(axis=1) & cost.notna().all(axis=1)
    keep = prompts[prompts["prompt_id"].isin(complete[complete].index)]
    print(f"{data_dir.name}: {len(prompts)} prompts, {len(models)} models, dropped {len(prompts) - len(keep)} incomplete")
    ids = keep["prompt_id"].tolist()
    return keep["prompt"].tolist(), models, score.loc[ids].to_numpy(float), cost.loc[ids].to_numpy(float)


def replay(texts: list[str], models: list[str], score: np.ndarray, cost: np.ndarray,
           q: float, c: float, seed: int) -> tuple[float, float]:
    """One shuffled online pass; returns (mean score, mean cost) of the chosen models."""
    peer = LiteLLMAdaptivePeer(dict(zip(models, cost.mean(axis=0))), q, c, seed)
    col = {m: j for j, m in enumerate(models)}
    got_s, got_c = [], []
    for i in np.random.default_rng(seed).permutation(len(texts)):
        m = peer.choose(texts[i])
        j = col[m]
        peer.learn(texts[i], m, score[i, j])
        got_s.append(score[i, j])
        got_c.append(cost[i, j])
    peer.close()
    return float(np.mean(got_s)), float(np.mean(got_c))


def main(dirs: list[str]) -> None:
    for d in dirs:
        texts, models, score, cost = load(Path(d))
        best = int(np.argmax(score.mean(axis=0)))
        ref_cost = cost[:, best].mean()
        print(f"  best single: {models[best]} {score[:, best].mean():.3f} / {ref_cost:.2e}")
        for q, c in WEIGHTS:
            t = time.time()
            runs = [replay(texts, models, score, cost, q, c, s) for s in SEEDS]
            s_, c_ = np.array(runs).T
            per_seed = "  ".join(f"{a:.3f}@{100 * b / ref_cost:.0f}%" for a, b in runs)
            print(f"  q/c={q:.2f}/{c:.2f}: {s_.mean():.3f} @ {100 * c_.mean() / ref_cost:.0f}%"
                  f"   seeds: {per_seed}   ({(time.time() - t) / len(SEEDS):.1f}s/run)")


if __name__ == "__main__":
    main(sys.argv[1:] or ["/work/shared/data/llmrouter-9"])

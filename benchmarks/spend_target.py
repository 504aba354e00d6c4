"""The target-cost form of the dial: replays with `SpendTarget` on the three shared sets; writes
docs/spend_target_results.md (included in docs/BENCHMARKS.md).

Each target is a share of the best single model's mean cost per prompt on the set. The Router (the default
policy) routes every prompt at the target's moving dial, bandit feedback, the table's costs settled, 3 seeds.
Reported per target: the mean cost over the whole stream and over its second half (as a share of the best model's),
the mean score, the hull gain, and the dial the target ended at.

    LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/spend_target.py [--data DIR]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from bandit_router import Router, SpendTarget
from bandit_router.encoders import sentence_encoder
from bandit_router.evaluation import load_table, table_vectors
from bandit_router.evaluation.embeddings import lookup_encoder
from bandit_router.evaluation.metrics import hull_gain
from bandit_router.evaluation.replay import replay

ROOT = Path(__file__).resolve().parents[1]
ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
SETS = {"llmrouter-9": "raise", "routellm-mmlu-2": "raise", "routerarena-2": "drop"}  # set: invalid_rows
SHARES = (0.2, 0.4, 0.6, 0.8)


def _run(folder: str, invalid_rows: str, share: float, seed: int) -> tuple[str, float, int, dict[str, float]]:
    from threadpoolctl import threadpool_limits

    table = load_table(folder, invalid_rows=invalid_rows)
    vectors = table_vectors(table, sentence_encoder(ENCODER))
    singles = (table.costs.mean(axis=0), table.scores.mean(axis=0))
    best_cost = singles[0][singles[1].argmax()]
    target = SpendTarget(share * best_cost)
    router = Router(table.model_cards(), encoder=lookup_encoder(table, vectors, ENCODER), seed=seed,
                    cost_weight=target)
    with threadpool_limits(1):
        run = replay(table, router, None, seed)
    half = len(run.cost) // 2
    return table.name, share, seed, {
        "cost": run.mean_cost / best_cost, "cost_late": float(run.cost[half:].mean()) / best_cost,
        "score": run.mean_score, "gain": float(hull_gain(run.mean_cost, run.mean_score, *singles)),
        "dial": router.cost_weight}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="folder of the shared sets")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "docs" / "spend_target_results.md"))
    args = parser.parse_args()
    cheapest = {}
    for name, invalid_rows in SETS.items():  # encode once, before the workers read the cache
        table = load_table(f"{args.data}/{name}", invalid_rows=invalid_rows)
        table_vectors(table, sentence_encoder(ENCODER))
        means = table.costs.mean(axis=0)
        cheapest[name] = means.min() / means[table.scores.mean(axis=0).argmax()]
    jobs = [(f"{args.data}/{name}", rows, share, seed) for name, rows in SETS.items() for share in SHARES
            for seed in range(args.seeds)]
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(_run, *zip(*jobs)))
    lines = ["# Spend targets: the dial set from a mean cost per request", "",
             f"`SpendTarget(share x the best single model's mean cost)` as the Router's `cost_weight`, the default "
             f"policy, bandit feedback, seeds 0-{args.seeds - 1} (mean, and each seed). Cost is a share of the best "
             f"model's mean cost; \"late\" is the second half of the stream. Made by:", "",
             "    LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/spend_target.py", "",
             "| set | target | cost | cost, late half | score | hull gain | dial at the end |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name in SETS:
        for share in SHARES:
            rows = [r for n, s, _, r in results if n == name and s == share]
            cell = lambda key, fmt: f"{fmt.format(np.mean([r[key] for r in rows]))} (" + " ".join(  # noqa: E731
                fmt.format(r[key]) for r in rows) + ")"
            lines.append(f"| {name} | {share:.0%} | {cell('cost', '{:.0%}')} | {cell('cost_late', '{:.0%}')} | "
                         f"{cell('score', '{:.3f}')} | {cell('gain', '{:+.4f}')} | {cell('dial', '{:.3f}')} |")
    lines += ["", "The cheapest single model costs " + ", ".join(f"{share:.0%} of the best on {name}" for name, share
                                                      in cheapest.items()) + ". A target below what the dial's end (1) "
              "spends cannot be met: the target then holds the dial at 1, the cheapest routing the dial allows.",
              "", f"{len(jobs)} replays in {time.perf_counter() - started:.0f} s on {args.workers} workers."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""The target-cost form of the dial: replays with `SpendTarget` on the three shared sets; writes
docs/spend_target_results.md (included in docs/BENCHMARKS.md).

Each target is a share of the best single model's mean cost per prompt on the set. The Router (the default
policy) routes every prompt at the target's moving dial, bandit feedback, the table's costs settled, 3 seeds:
the runs `bandit-router replay SET --spend 0.2,0.4,0.6,0.8` adds to its dial sweep, tabled the same way.

    LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/spend_target.py [--data DIR]
"""

from __future__ import annotations

import time
from pathlib import Path

from bandit_router.evaluation.report import spend_table
from bandit_router.evaluation.sweep import SweepSpec, run_sweep

from shared_sets import ENCODER, SETS, arguments, load

SHARES = (0.2, 0.4, 0.6, 0.8)


def main() -> None:
    args = arguments(__doc__.splitlines()[0], "spend_target_results.md")
    spec = SweepSpec(["shrunk-linucb"], dials=(), seeds=range(args.seeds), spends=SHARES)
    lines = ["# Spend targets: the dial set from a mean cost per request", "",
             f"`SpendTarget(share x the best single model's mean cost)` as the Router's `cost_weight`, the default "
             f"policy, bandit feedback, seeds 0-{args.seeds - 1}. Made by:", "",
             "    LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/spend_target.py", "",
             "`bandit-router replay SET --spend 0.2,0.4,0.6,0.8` adds the same runs to a dial sweep's summary.md.", ""]
    started, cheapest = time.perf_counter(), []
    for name in SETS:
        table, vectors = load(args.data, name)
        runs = [run for run, _ in run_sweep(table, vectors, ENCODER, spec, workers=args.workers)]
        lines += [f"## {name}", "", *spend_table(table, runs)]
        means = table.costs.mean(axis=0)
        cheapest.append(f"{means.min() / means[table.best]:.0%} of the best on {name}")
    lines += ["The cheapest single model costs " + ", ".join(cheapest) + ".", "",
              f"{len(SETS) * len(list(spec.tasks()))} replays in {time.perf_counter() - started:.0f} s on "
              f"{args.workers} workers."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

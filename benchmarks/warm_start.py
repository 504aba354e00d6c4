"""Warm starts: the default policy after every model has been scored on a few prompts (PILOT's offline prior),
beside the cold start, on the three shared sets; writes docs/warm_start_results.md (included in
docs/BENCHMARKS.md).

For each seed the table's prompts are shuffled; with a warm start of W prompts, the first W teach the Router
every model's score (full information, as a logged table or a one-off evaluation would) and the rest are routed
with bandit feedback: the runs of `bandit-router replay SET --warm-start W`. Hull gain is over the routed
prompts, against the single models' hull on the same prompts.

    LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/warm_start.py [--data DIR]
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bandit_router.evaluation.report import run_hull_gain
from bandit_router.evaluation.sweep import SweepSpec, run_sweep

from shared_sets import ENCODER, SETS, arguments, load

DIALS = (0.0, 0.03, 0.06, 0.1, 0.2, 0.5)
WARM = (0, 50, 200)  # prompts scored by every model before routing


def main() -> None:
    args = arguments(__doc__.splitlines()[0], "warm_start_results.md")
    lines = ["# Warm starts: what a few prompts scored by every model buy", "",
             f"The default policy, bandit feedback, seeds 0-{args.seeds - 1}. With a warm start of W prompts, the first "
             "W of each seed's shuffled stream teach the Router every model's score (full information: what "
             "`bandit_router.priors.absorb` does with a logged table, PILOT's offline prior) and the rest are "
             "routed. Cells: hull gain over the routed prompts, against the single models on the same prompts "
             "(mean ± sd over seeds) @ mean cost as % of the best single model's. Made by:", "",
             "    LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/warm_start.py", "",
             "`bandit-router replay SET --warm-start W` makes the same runs, with the full summary.md.", ""]
    started, runs_done = time.perf_counter(), 0
    for name in SETS:
        table, vectors = load(args.data, name)
        best_cost = table.costs[:, table.best].mean()
        columns = []
        for warm in WARM:
            spec = SweepSpec(["shrunk-linucb"], DIALS, range(args.seeds), warm_start=warm)
            runs = [run for run, _ in run_sweep(table, vectors, ENCODER, spec, workers=args.workers)]
            runs_done += len(runs)
            cells = []
            for dial in DIALS:
                rs = [r for r in runs if r.cost_weight == dial]
                gains = [run_hull_gain(table, r) for r in rs]
                cost = 100 * np.mean([r.mean_cost for r in rs]) / best_cost
                cells.append(f"{np.mean(gains):+.3f} ± {np.std(gains):.3f} @ {cost:.0f}%")
            columns.append(cells)
        warm_cost = {w: w * table.costs.sum(axis=1).mean() / best_cost for w in WARM if w}
        lines += [f"## {name}", "", f"{len(table)} prompts x {len(table.models)} models.", "",
                  "| dial | " + " | ".join("cold" if w == 0 else f"warm start, {w} prompts" for w in WARM) + " |",
                  "|---:|" + "---:|" * len(WARM)]
        lines += [f"| {dial:g} | " + " | ".join(col[i] for col in columns) + " |" for i, dial in enumerate(DIALS)]
        lines += ["", "Scoring the warm-start prompts on every model costs as much as routing " + ", ".join(
            f"{cost:.0f} prompts ({w} prompts)" for w, cost in warm_cost.items()) +
            " to the best single model.", ""]
    lines += [f"{runs_done} replays in {time.perf_counter() - started:.0f} s on {args.workers} workers."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

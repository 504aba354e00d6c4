"""Quick policy-variant sweep on one shared set: our score read off each seed's frontier at the peers' costs.

    LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/peers/variants.py \
        llmrouter-9 0,0.03,0.06,0.1,0.2 'hierlin:{"alpha":0.5}' 'hierlin:{"alpha":0.3}' ...

Seeds 0, 1, 2, one process, the same streams as compare.py. One line per variant is printed and appended to
benchmarks/peers/results/variants.log: each dial's mean score @ cost % (± half the seed range), then the mean
over seeds of the per-seed frontier at the listed costs (LiteLLM's and the 44% target on llmrouter-9).
"""

from __future__ import annotations

import sys
import time

from compare import ROOT, SETS, at_cost, load_table, parse_ours, sweep_curve, vectors_of  # noqa: I001

TARGETS = {"llmrouter-9": [17, 34, 44, 65, 82], "routerarena-2": [103, 109, 117, 123],
           "routellm-mmlu-2": [9, 61, 93, 98]}


def main(name: str, dials: list[float], specs: list[str], data: str = "/work/shared/data") -> None:
    table = load_table(f"{data}/{name}", invalid_rows=SETS[name])
    vectors = vectors_of(table)
    ref = table.costs[:, table.best].mean()
    for spec in specs:
        label, sweep = parse_ours(spec)
        started = time.time()
        curve = sweep_curve(table, vectors, label, sweep, dials, [0, 1, 2], ref)
        points = "  ".join(f"w{d:g}:{s.mean():.3f}@{c.mean():.0f}%±{(s.max() - s.min()) / 2:.3f}"
                           for d, s, c in zip(dials, curve.score, curve.cost))
        at = " ".join(f"{t}%:{at_cost(curve, t).mean():.3f}" for t in TARGETS[name])
        line = f"{name} | {label} | {points} | frontier at {at} | {time.time() - started:.0f}s"
        print(line, flush=True)
        with (ROOT / "benchmarks" / "peers" / "results" / "variants.log").open("a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main(sys.argv[1], [float(d) for d in sys.argv[2].split(",")], sys.argv[3:])

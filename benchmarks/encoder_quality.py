"""Routing quality per prompt encoder: the default policy's hull gain at each dial on the three shared sets.

    LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python \
        benchmarks/encoder_quality.py --data ../shared/data --out benchmarks/results/encoders

Replays each set with each encoder (`bandit-router replay --encoder NAME --workers 1`, skipped when
OUT/<encoder>/<set>/results.csv exists) and writes docs/encoder_quality_results.md (included in
docs/BENCHMARKS.md). Hull gain: a run's mean score minus
the upper concave hull of the single models' (mean cost, mean score) points at the run's mean cost (held flat
beyond the cheapest and the dearest model), so positive means better than any fixed split between models.
"""

from __future__ import annotations

import argparse
import csv
import inspect
from collections import defaultdict
from pathlib import Path

import numpy as np

from bandit_router import Router
from bandit_router.cli import main as cli
from bandit_router.encoders import DEFAULT_ENCODER
from bandit_router.static_encoder import STATIC_ENCODER

SETS = {"llmrouter-9": [], "routellm-mmlu-2": [], "routerarena-2": ["--invalid-rows", "drop"]}
DIALS = "0,0.03,0.06,0.1,0.2,0.5"
TOLERANCE = 0.003  # the static encoder becomes the default only within this of MiniLM at every dial and set
POLICY = inspect.signature(Router).parameters["policy"].default


def frontier(costs: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of the upper, non-decreasing concave hull of (cost, score) points, sorted by cost."""
    hull: list[tuple[float, float]] = []
    for c, s in sorted(zip(costs, scores), key=lambda p: (p[0], -p[1])):
        if hull and s <= hull[-1][1]:
            continue  # costs more, scores no better
        while len(hull) >= 2 and (hull[-1][1] - hull[-2][1]) * (c - hull[-2][0]) <= \
                (s - hull[-2][1]) * (hull[-1][0] - hull[-2][0]):
            hull.pop()  # the last vertex lies on or under the chord
        hull.append((c, s))
    points = np.array(hull)
    return points[:, 0], points[:, 1]


def hull_gains(results: Path) -> dict[float, list[float]]:
    """The default policy's hull gain per dial (one value per seed) from a replay's results.csv."""
    with results.open(newline="") as f:
        rows = list(csv.DictReader(f))
    singles = defaultdict(list)
    for r in rows:
        if r["policy"].startswith("single:"):
            singles[r["policy"]].append((float(r["mean_cost"]), float(r["mean_score"])))
    costs, scores = zip(*(np.mean(points, axis=0) for points in singles.values()))
    hull_c, hull_s = frontier(np.array(costs), np.array(scores))
    gains: dict[float, list[float]] = defaultdict(list)
    for r in rows:
        if r["policy"] == POLICY:
            gains[float(r["dial"])].append(float(r["mean_score"]) - float(np.interp(float(r["mean_cost"]), hull_c,
                                                                                        hull_s)))
    return gains


def replay(data: Path, name: str, encoder: str, out: Path, seeds: int) -> Path:
    results = out / encoder.replace("/", "--") / name / "results.csv"
    if not results.exists():
        cli(["replay", str(data / name), *SETS[name], "--policy", POLICY, "--dial", DIALS, "--seeds", str(seeds),
             "--workers", "1", "--encoder", encoder, "--out", str(results.parent)])
    return results


COMMAND = ("LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python "
           "benchmarks/encoder_quality.py --data ../shared/data --out benchmarks/results/encoders")


def markdown(gains: dict[str, dict[str, dict[float, list[float]]]], fast: str, base: str) -> str:
    lines, worst = [], 0.0
    for name, by_encoder in gains.items():
        lines += [f"**{name}**: hull gain, mean ± sd over seeds; the difference per seed pairs the same prompt "
                  "order", "", f"| dial | {base} | {fast} | difference | per seed | within {TOLERANCE} |",
                  "|---:|---:|---:|---:|---|---|"]
        for dial in sorted(set(by_encoder[base]) | set(by_encoder[fast])):
            if dial not in by_encoder[base] or dial not in by_encoder[fast]:
                missing = base if dial not in by_encoder[base] else fast
                lines.append(f"| {dial:g} | not replayed with {missing} | | | | |")
                continue
            b, f = np.array(by_encoder[base][dial]), np.array(by_encoder[fast][dial])
            diff = f.mean() - b.mean()
            worst = min(worst, diff)
            lines.append(f"| {dial:g} | {b.mean():+.4f} ± {b.std():.4f} | {f.mean():+.4f} ± {f.std():.4f} | "
                         f"{diff:+.4f} | {', '.join(f'{d:+.4f}' for d in f - b)} | "
                         f"{'yes' if diff >= -TOLERANCE else '**no**'} |")
        lines.append("")
    verdict = (f"holds: {fast} can be the default" if worst >= -TOLERANCE else
               f"does not hold (largest loss {-worst:.4f}), so {base} stays the default")
    return "\n".join([
        "# Routing quality per prompt encoder", "", "```", COMMAND, "```", "",
        f"The default policy (`{POLICY}`) replayed with each encoder (`bandit-router replay --encoder NAME`, dials "
        f"{DIALS}, 3 seeds, bandit feedback). Hull gain: the run's mean score minus the single models' upper "
        f"concave hull at the run's mean cost (positive: better than any fixed split between models). The rule for "
        f"making {fast} the default: within {TOLERANCE} of {base} at every dial on every set (a loss of at most "
        f"{TOLERANCE}; a gain always passes). Verdict: {verdict}.", "", *lines])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data", help="folder holding the shared sets")
    parser.add_argument("--out", default="benchmarks/results/encoders")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--doc", default="docs/encoder_quality_results.md")
    args = parser.parse_args()
    out, encoders = Path(args.out), (DEFAULT_ENCODER, STATIC_ENCODER)
    gains = {name: {enc: hull_gains(replay(Path(args.data), name, enc, out, args.seeds)) for enc in encoders}
             for name in args.sets.split(",")}
    text = markdown(gains, fast=STATIC_ENCODER, base=DEFAULT_ENCODER)
    Path(args.doc).write_text(text)
    print(text)


if __name__ == "__main__":
    main()

"""Our router beside the routers a user would pick instead, on the same shuffled streams, in one run.

    LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/peers/compare.py \
        [--data /work/shared/data] [--sets llmrouter-9,routellm-mmlu-2,routerarena-2] [--seeds 0,1,2] \
        [--dials 0,0.05,0.1,0.2,0.5] [--ours linucb --ours 'hierlin:{"alpha":0.5}' --ours linucb+tasks] [--workers 1] [--out docs/PEERS.md]

For every set (routerarena-2 loaded with invalid_rows="drop") and every seed, the prompts are shuffled with
np.random.default_rng(seed).permutation (the order `bandit_router.evaluation.replay` uses) and streamed once,
with bandit feedback, through
- our Router (each `--ours` policy, default: the Router's default policy) at every dial, via `replay`;
- LiteLLM's adaptive router (`LiteLLMAdaptivePeer`) at quality/cost weights 1.0/0.0, 0.95/0.05, 0.9/0.1, 0.8/0.2;
and beside them the full-information ridge router (trained with every model's score on one seeded half of the
prompts to route the other, cross-fitted so that it routes every prompt) at every dial, the ulab LLMRouter library's KNN, SVM, MLP and HybridLLM routers (llmrouter-lib
0.4.0, `benchmarks/peers/ulab_llmrouter.py`: the library's own router and trainer classes fed our prompt vectors
in memory and trained on the ridge router's halves, without pickling; HybridLLM at several thresholds; skipped
with a note if llmrouter-lib is not installed; install it with `make peers-deps`), and every single model. Cost
is reported as % of the best single model's mean cost (best = highest mean score). Our score at a peer's cost is
read off the upper concave hull of our (cost, score) points per seed (RouterBench's frontier: any point on it is
reached by mixing two dials at random), flat beyond our costliest point. Writes the tables to `--out` (plus
benchmarks/peers/attempts.md, hand-written, after them), a PNG per set to docs/img/peers_<set>.png and the raw
numbers to benchmarks/peers/results/<set>.json.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass, replace
from importlib.metadata import version
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bandit_router.encoders import DEFAULT_ENCODER, sentence_encoder  # noqa: E402
from bandit_router.evaluation.embeddings import table_vectors  # noqa: E402
from bandit_router.evaluation.metrics import frontier  # noqa: E402
from bandit_router.evaluation.references import full_info_ridge_run, single_model_runs  # noqa: E402
from bandit_router.evaluation.sweep import SweepSpec, run_sweep  # noqa: E402
from bandit_router.evaluation.table import RoutingTable, load_table  # noqa: E402
from bandit_router.router import Router  # noqa: E402
from bandit_router.tasks import TEXT_WEIGHT  # noqa: E402
from benchmarks.peers import ulab_llmrouter  # noqa: E402
from benchmarks.peers.litellm_adaptive import LiteLLMAdaptivePeer  # noqa: E402

SETS = {"llmrouter-9": "raise", "routellm-mmlu-2": "raise", "routerarena-2": "drop"}
WEIGHTS = [(1.0, 0.0), (0.95, 0.05), (0.9, 0.1), (0.8, 0.2)]
DEFAULT_POLICY = inspect.signature(Router).parameters["policy"].default
MATCH = 0.05  # a measured point within 5% of a peer's cost counts as matched
PEERS = ("LiteLLM adaptive", "full-info ridge")  # plus every curve labelled "... (ulab)"


@dataclass
class Curve:
    """A router's operating points: per point (dial or weight) and seed, mean score and cost % of the best model."""

    label: str
    points: list[str]
    score: np.ndarray  # (points, seeds)
    cost: np.ndarray  # (points, seeds), % of the best single model's mean cost


def litellm_run(table: RoutingTable, quality: float, cost: float, seed: int) -> tuple[float, float]:
    """One pass of LiteLLM's adaptive router over the seed's stream; (mean score, mean cost). Its models are
    listed in name order (as benchmarks/peers/check_litellm_adaptive.py does): the order decides which Thompson
    draw goes to which model, and on llmrouter-9 its results move with it by more than its seed spread."""
    prices = dict(zip(table.models, table.costs.mean(axis=0)))
    peer = LiteLLMAdaptivePeer({m: prices[m] for m in sorted(prices)}, quality, cost, seed)
    column = {m: k for k, m in enumerate(table.models)}
    rows = np.random.default_rng(seed).permutation(len(table))
    chosen = np.empty(len(rows), dtype=int)
    for step, i in enumerate(rows):
        k = chosen[step] = column[peer.choose(table.prompts[i])]
        peer.learn(table.prompts[i], table.models[k], table.scores[i, k])
    peer.close()
    return float(table.scores[rows, chosen].mean()), float(table.costs[rows, chosen].mean())


def parse_ours(spec: str) -> tuple[str, SweepSpec]:
    """'policy' or 'policy:{json settings}', with '+tasks' (or '+tasks=TEXT_WEIGHT') after the policy's name to
    tell the Router each prompt's task label as a task hint -> (label, a SweepSpec with no dials or seeds yet)."""
    policy, _, settings = spec.partition(":")
    policy, hints, weight = policy.partition("+tasks")
    values = json.loads(settings) if settings else {}
    label = policy + ("" if not values else " " + ",".join(f"{k}={v}" for k, v in values.items()))
    label += (" + task hints" if hints else "") + (f" (text_weight {weight[1:]})" if weight else "")
    return label, SweepSpec([policy], [], [], {policy: values}, task_hints=bool(hints),
                           text_weight=float(weight[1:]) if weight else TEXT_WEIGHT)


def vectors_of(table: RoutingTable) -> np.ndarray:
    return table_vectors(table, sentence_encoder())  # cached on disk after the first run


def sweep_curve(table: RoutingTable, vectors: np.ndarray, label: str, sweep: SweepSpec, dials: list[float],
                seeds: list[int], ref: float, workers: int = 1, encoder_name: str = DEFAULT_ENCODER) -> Curve:
    """Our Router's curve: `sweep` replayed at every dial and seed, cost as % of `ref`."""
    runs = run_sweep(table, vectors, encoder_name, replace(sweep, dials=dials, seeds=seeds), workers=workers)
    score = np.array([r.mean_score for r, _ in runs]).reshape(len(dials), len(seeds))
    cost = np.array([r.mean_cost for r, _ in runs]).reshape(len(dials), len(seeds)) / ref * 100
    return Curve(label, [f"dial {d:g}" for d in dials], score, cost)


def run_set(table: RoutingTable, ours: list[str], dials: list[float], seeds: list[int],
            workers: int) -> tuple[list[Curve], dict[str, tuple[float, float]], float, str]:
    """Every router's curve on `table` (ours, LiteLLM's, the full-information ridge router), each single model's
    (score, cost %), the best single model's mean cost and its name."""
    vectors = vectors_of(table)
    best = table.best
    ref = float(table.costs[:, best].mean())
    curves = []
    for spec in ours:
        label, sweep = parse_ours(spec)
        started = time.time()
        curves.append(sweep_curve(table, vectors, label, sweep, dials, seeds, ref, workers))
        print(f"  {label}: {time.time() - started:.0f}s", flush=True)
    started = time.time()
    lite = np.array([[litellm_run(table, q, c, s) for s in seeds] for q, c in WEIGHTS])  # (weights, seeds, 2)
    curves.append(Curve("LiteLLM adaptive", [f"q/c {q:g}/{c:g}" for q, c in WEIGHTS], lite[..., 0],
                        lite[..., 1] / ref * 100))
    print(f"  LiteLLM: {time.time() - started:.0f}s", flush=True)
    ridge = [[full_info_ridge_run(table, vectors, d, s) for s in seeds] for d in dials]
    curves.append(Curve("full-info ridge", [f"dial {d:g}" for d in dials],
                        np.array([[r.mean_score for r in row] for row in ridge]),
                        np.array([[r.mean_cost for r in row] for row in ridge]) / ref * 100))
    if ulab_llmrouter.available():
        started = time.time()
        runs = [ulab_llmrouter.ulab_runs(table, vectors, s) for s in seeds]  # per seed: label -> point -> run
        for label, points in runs[0].items():
            values = np.array([[run[label][p] for run in runs] for p in points])  # (points, seeds, 2)
            curves.append(Curve(label, list(points), values[..., 0], values[..., 1] / ref * 100))
        print(f"  LLMRouter (ulab): {time.time() - started:.0f}s", flush=True)
    else:
        print(f"  LLMRouter (ulab) skipped: {ulab_llmrouter.LIBRARY} is not installed (make peers-deps)", flush=True)
    singles = {r.policy.removeprefix("single:"): (r.mean_score, r.mean_cost / ref * 100)
               for r in single_model_runs(table)}
    return curves, singles, ref, table.models[best]


def at_cost(curve: Curve, cost: float) -> np.ndarray:
    """Per seed, the score of the curve's upper hull at `cost` (flat beyond its ends: below its cheapest point
    this is a score the curve only reaches at a higher cost, which `ratio_rows` says)."""
    out = []
    for s in range(curve.score.shape[1]):
        hull_c, hull_s = frontier(curve.cost[:, s], curve.score[:, s])
        out.append(np.interp(cost, hull_c, hull_s))
    return np.array(out)


def spread(values: np.ndarray) -> float:
    return float(np.max(values) - np.min(values))


def fmt_point(score: np.ndarray, cost: np.ndarray) -> str:
    return f"{score.mean():.3f} @ {cost.mean():.0f}% (±{spread(score) / 2:.3f})"


def ratio_rows(ours: Curve, peer: Curve) -> list[str]:
    """One table row per peer point: our hull score at its cost, the ratio, the nearest measured point, verdicts."""
    rows = []
    mean_cost = ours.cost.mean(axis=1)
    cheapest = mean_cost.min()
    for j, name in enumerate(peer.points):
        c, s = peer.cost[j].mean(), peer.score[j]
        mine = at_cost(ours, c)
        near = int(np.argmin(np.abs(mean_cost - c)))
        near_c, near_s = mean_cost[near], ours.score[near].mean()
        matched = abs(near_c - c) <= MATCH * c
        cheaper_better = near_c <= c and near_s > s.mean()
        gap = mine.mean() - s.mean()
        noise = max(spread(mine), spread(s))
        verdict = ("higher" if gap > 0 else "lower") + (", beyond spread" if abs(gap) > noise else ", within spread")
        if matched:
            match = "yes"
        elif cheaper_better:
            match = "no, but cheaper and better"
        elif c < cheapest:
            match = "no: our cheapest dial costs more"
        else:
            match = "no"
        rows.append(f"| {peer.label} {name} | {s.mean():.3f} @ {c:.0f}% | {mine.mean():.3f} | "
                    f"{mine.mean() / s.mean():.3f} | {gap:+.3f} vs {noise:.3f}: {verdict} | "
                    f"{near_s:.3f} @ {near_c:.0f}% ({ours.points[near]}) | {match} |")
    return rows


def is_peer(curve: Curve) -> bool:
    return curve.label in PEERS or curve.label.endswith("(ulab)")


def section(name: str, table: RoutingTable, curves: list[Curve], singles: dict[str, tuple[float, float]],
            best: str, ref: float, seeds: list[int]) -> str:
    lines = [f"## {name}", "",
             f"{len(table)} prompts ({sum(table.dropped.values())} dropped), {len(table.models)} models; best single model {best} (mean cost {ref:.3g} = 100%). "
             f"Mean over seeds {', '.join(map(str, seeds))}; ± is half the seed-to-seed range.", "",
             "| router | point | score @ cost (± seed spread) | per seed |", "| --- | --- | --- | --- |"]
    for curve in curves:
        for j, point in enumerate(curve.points):
            per_seed = "  ".join(f"{a:.3f}@{b:.0f}%" for a, b in zip(curve.score[j], curve.cost[j]))
            lines.append(f"| {curve.label} | {point} | {fmt_point(curve.score[j], curve.cost[j])} | {per_seed} |")
    for model, (s, c) in sorted(singles.items(), key=lambda kv: kv[1][1]):
        lines.append(f"| single model | {model} | {s:.3f} @ {c:.0f}% | |")
    peers = [c for c in curves if is_peer(c)]
    for ours in (c for c in curves if c not in peers):
        lines += ["", f"**{ours.label}** against each peer point at the peer's cost (our score read off our "
                  "per-seed frontier; verdict: our mean minus the peer's, against the larger seed-to-seed range "
                  "of the two; matched: our nearest measured dial within 5% of the peer's cost):", "",
                  "| peer point | peer score @ cost | ours at that cost | ratio ours/peer | difference | "
                  "our nearest dial | matched within 5% |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for peer in peers:
            lines += ratio_rows(ours, peer)
    lines += ["", f"![quality-cost points of every router on {name}](img/peers_{name}.png)", ""]
    return "\n".join(lines)


def plot(path: Path, name: str, curves: list[Curve], singles: dict[str, tuple[float, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for curve in curves:
        ax.plot(curve.cost.mean(axis=1), curve.score.mean(axis=1), marker="o", markersize=4, label=curve.label)
    for model, (s, c) in singles.items():
        ax.scatter([c], [s], marker="*", s=70, color="grey")
        ax.annotate(model, (c, s), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ulab = ", LLMRouter (ulab)" if any(c.label.endswith("(ulab)") for c in curves) else ""
    ax.set(xlabel="mean cost, % of the best single model", ylabel="mean score",
           title=f"{name}: bandit routers, LiteLLM adaptive, full-information ridge{ulab}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


INTRO = """# Our router beside its peers

Generated by `benchmarks/peers/compare.py` (the command is below; hand-written notes and the log of learning
attempts follow the tables). Every router sees the same prompt streams: for seed s the prompts are shuffled with
`np.random.default_rng(s).permutation` and streamed once, each router learning only from the score of the model
it chose (bandit feedback), except the full-information ridge router, which routes each seeded random half of
the prompts with a fit of every model's score on the other half. Cost is the mean cost per prompt as % of the best single
model's (highest mean score) mean cost.

How LiteLLM's adaptive router (`litellm.router_strategy.adaptive_router`, beta, LiteLLM {litellm_version}) is
driven (`benchmarks/peers/litellm_adaptive.py`): a real `litellm.Router` with one offline deployment per model
(mock responses, closed local port; no call is ever made) and one `auto_router/adaptive_router` deployment
listing the models with the quality/cost weights. Each decision is the model returned by
`Router.async_pre_routing_hook` (its regex request-type classifier, then one Thompson draw per model from the
(request type, model) Beta cell, score = q * draw + c * min-max-normalised cost, argmax). Each model's price
input is its mean cost per query on the set. No quality-tier preferences are declared, so every cell starts at
LiteLLM's default Beta(5, 5). LiteLLM's public learning path only reads satisfaction/failure signals from
multi-turn conversations, so the outcome is written into the (request type, model) cell exactly as its
`record_turn` does with its computed deltas: `cell = bandit.apply_delta(cell, d_alpha=score, d_beta=1 - score)`
(scores here are 0/1 or in [0, 1]; LiteLLM's 200-observation cap per cell is kept). Its Thompson draws use a
private `random.Random(seed)`. Its models are listed in name order (as in `check_litellm_adaptive.py`): the order
decides which draw goes to which model, and its results move with it (see the notes below).

{ulab_note}Curves labelled "+ task hints" are our Router declaring the set's task labels (prompts.csv's `task`
column: 14 tasks on llmrouter-9, 57 MMLU subjects on routellm-mmlu-2, 78 tasks on routerarena-2) and told each
prompt's task with the request (`Router(..., tasks=...)`, `route(..., task=...)`), as an application that knows
what kind of request it sends would; the peers are not given them (LiteLLM's router derives its request types
from the text).

Our score at a peer's cost is read off the upper concave hull of our (cost, score) points of the same seed
(RouterBench's frontier: any point on it is reached by choosing between two dials at random per request), held
flat beyond our costliest point and below our cheapest one (such rows say "our cheapest dial costs more").
"Beyond spread" means our mean minus the peer's mean exceeds the larger of the
two seed-to-seed ranges (max - min over seeds); "matched within 5%" means one of our measured dials has a mean
cost within 5% of the peer's, so the comparison does not lean on the interpolation.

"""

ULAB_NOTE = """How the ulab LLMRouter library's routers (llmrouter-lib {version}) are driven
(`benchmarks/peers/ulab_llmrouter.py`, installed by `make peers-deps`): its own `KNNRouter`, `SVMRouter`,
`MLPRouter` and `HybridLLMRouter` classes with the hyperparameters of its shipped configs, given our prompt
vectors and one of the full-information ridge router's halves in memory (its file loader patched out), fitted by
its own trainers' `train()` with their pickle save patched to a no-op. KNN, SVM and MLP classify each prompt into
the model with the best score on it (the library's label; it ignores cost; ties go to the cheapest tied model);
HybridLLM regresses sigmoid((score small - score large) / 0.1) between the smallest and the largest model (by size;
by mean cost where a set gives no sizes) and sends a prompt to the small one when the prediction reaches its
threshold, swept here as its cost/quality knob. All four route each half from our vectors after training on the
other, as the ridge router does, so they route every prompt.

"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="/work/shared/data")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--dials", default="0,0.05,0.1,0.2,0.5")
    parser.add_argument("--ours", action="append", help="policy or 'policy:{json settings}' (repeatable)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "docs" / "PEERS.md"))
    args = parser.parse_args()
    ours = args.ours or [DEFAULT_POLICY]
    seeds = [int(s) for s in args.seeds.split(",")]
    dials = [float(d) for d in args.dials.split(",")]
    command = "LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/peers/compare.py " + \
        " ".join(shlex.quote(a) for a in sys.argv[1:])
    out = Path(args.out)
    ulab_note = ULAB_NOTE.format(version=version(ulab_llmrouter.LIBRARY)) if ulab_llmrouter.available() else ""
    parts = [INTRO.format(litellm_version=version("litellm"), ulab_note=ulab_note),
             f"Our default policy is the Router's default, `{DEFAULT_POLICY}`.", "", "```", command, "```", ""]
    started = time.time()
    for name in args.sets.split(","):
        print(name, flush=True)
        table = load_table(Path(args.data) / name, invalid_rows=SETS[name])
        curves, singles, ref, best = run_set(table, ours, dials, seeds, args.workers)
        results = ROOT / "benchmarks" / "peers" / "results"
        results.mkdir(parents=True, exist_ok=True)
        (results / f"{name}.json").write_text(json.dumps({
            "command": command, "seeds": seeds, "best_model": best, "best_cost": ref, "singles": singles,
            "curves": [{"label": c.label, "points": c.points, "score": c.score.tolist(), "cost_pct": c.cost.tolist()}
                       for c in curves]}, indent=1))
        image = out.parent / "img" / f"peers_{name}.png"
        image.parent.mkdir(parents=True, exist_ok=True)
        plot(image, name, curves, singles)
        parts.append(section(name, table, curves, singles, best, ref, seeds))
    parts.append(f"The run took {(time.time() - started) / 60:.0f} minutes.\n")
    notes = ROOT / "benchmarks" / "peers" / "attempts.md"
    if notes.exists():
        parts.append(notes.read_text())
    out.write_text("\n".join(parts))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""The written result of a sweep: results.csv (one row per run), summary.md and the PNG plots."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from .metrics import aiq, apgr, cumulative_regret, frontier, hull_gain, learning_curve
from .plots import plot_frontier, plot_learning, plot_regret
from .replay import ReplayRun
from .table import RoutingTable

__all__ = ["RESULT_COLUMNS", "LEARNING_CHECKPOINTS", "result_row", "run_hull_gain", "score_pct_best", "cost_pct_best",
           "hull_table", "spend_table", "write_report"]

RESULT_COLUMNS = ("policy", "dial", "seed", "n", "mean_score", "mean_cost", "score_pct_best", "cost_pct_best",
                  "hull_gain", "regret_vs_oracle", "regret_vs_best_fixed", "seconds", "spend")


LEARNING_CHECKPOINTS = (250, 500, 1000, 2000)  # prompts after which the learning curve is tabled


def _singles(table: RoutingTable, run: ReplayRun | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each single model's mean cost and mean score over the prompts `run` routed (without a run: the table's)."""
    rows = slice(None) if run is None else run.order
    return table.costs[rows].mean(axis=0), table.scores[rows].mean(axis=0)


def run_hull_gain(table: RoutingTable, run: ReplayRun) -> float:
    """The run's mean score less the single models' hull at its mean cost, both over the prompts it routed (after
    a warm start, only the prompts after it)."""
    return float(hull_gain(run.mean_cost, run.mean_score, *_singles(table, run)))


def _is_reference(policy: str) -> bool:
    return policy.startswith("single:") or policy == "oracle"


def _is_bandit(policy: str) -> bool:
    """A replayed policy: neither a reference nor the full-information router."""
    return not (_is_reference(policy) or policy == "full-info-ridge")


def _routed(table: RoutingTable, grouped: dict[str, dict[float, list[ReplayRun]]]) -> int:
    """Prompts the learned policies routed: the table's, or fewer after a warm start (which the full-information
    router, routing every prompt, does not have)."""
    return max((len(r.order) for p, g in grouped.items() if _is_bandit(p) for rs in g.values() for r in rs),
               default=len(table))


def score_pct_best(table: RoutingTable, run: ReplayRun) -> float:
    """The run's mean score as % of the best single model's on the prompts it routed (after a warm start, only
    those)."""
    return percent(run.mean_score, table.scores[run.order, table.best].mean())


def cost_pct_best(table: RoutingTable, run: ReplayRun) -> float:
    """The run's mean cost as % of the best single model's on the prompts it routed (NaN when that is 0)."""
    return percent(run.mean_cost, table.costs[run.order, table.best].mean())


def result_row(table: RoutingTable, run: ReplayRun, seconds: float | None = None) -> dict[str, object]:
    """One results.csv row: means, both as % of the best single model's, and total regret (utility at the dial;
    for a spend-target run, `dial` is where the target ended and `spend` its share of the best model's cost)."""
    regret = cumulative_regret(table.scores[run.order], table.costs[run.order], run.cost_weight, run.chosen)
    return {"policy": run.policy, "dial": run.cost_weight, "seed": run.seed, "n": len(run.order),
            "mean_score": run.mean_score, "mean_cost": run.mean_cost,
            "score_pct_best": score_pct_best(table, run), "cost_pct_best": cost_pct_best(table, run),
            "hull_gain": run_hull_gain(table, run),
            "regret_vs_oracle": float(regret["oracle"][-1]), "regret_vs_best_fixed": float(regret["best_fixed"][-1]),
            "seconds": "" if seconds is None else round(seconds, 2), "spend": "" if run.spend is None else run.spend}


def _by(runs: Sequence[ReplayRun]) -> dict[str, dict[float, list[ReplayRun]]]:
    grouped: dict[str, dict[float, list[ReplayRun]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        grouped[run.policy][run.cost_weight].append(run)
    return grouped


def percent(value: float, of: float) -> float:
    """`value` as % of `of`; NaN (shown as n/a) when `of` is 0: a free best model has no cost to compare with."""
    return 100 * value / of if of > 0 else math.nan


def _cell(values: list[float], fmt: str) -> str:
    """mean ± sd; `fmt` signs the mean only (an sd is never below 0); n/a when the values are undefined."""
    if any(math.isnan(v) for v in values):
        return "n/a"
    return format(np.mean(values), fmt) + (f" ± {np.std(values):{fmt.replace('+', '')}}" if len(values) > 1 else "")


def _grid(title: str, grouped, dials: list[float], value, fmt: str) -> list[str]:
    lines = [f"**{title}**", "", "| policy | " + " | ".join(f"w={d:g}" for d in dials) + " |",
             "|---|" + "---:|" * len(dials)]
    for policy, by_dial in grouped.items():
        cells = [_cell([value(r) for r in by_dial[d]], fmt) if by_dial.get(d) else "" for d in dials]
        lines.append(f"| {policy} | " + " | ".join(cells) + " |")
    return lines + [""]


def hull_table(table: RoutingTable, runs: Sequence[ReplayRun]) -> list[str]:
    """Plain-text lines, one per learned policy and dial, then per spend target: mean score, mean cost as % of the
    best single model's on the routed prompts and hull gain (mean ± sd over seeds)."""
    lines = [f"{'policy':<24} {'dial':>11} {'score':>7} {'cost %best':>11} {'hull gain':>16}"]
    groups: dict[str, dict[tuple[bool, float], list[ReplayRun]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        if not _is_reference(run.policy):
            key = (False, run.cost_weight) if run.spend is None else (True, run.spend)
            groups[run.policy][key].append(run)
    for policy, by_setting in groups.items():
        for spend, value in sorted(by_setting):
            rs = by_setting[spend, value]
            gains = [run_hull_gain(table, r) for r in rs]
            setting = f"spend {value:.0%}" if spend else f"{value:g}"
            spread = f" ± {np.std(gains):.3f}" if len(gains) > 1 else " (1 seed)"
            cost = np.mean([cost_pct_best(table, r) for r in rs])
            shown = "n/a" if math.isnan(cost) else f"{cost:.1f}%"
            lines.append(f"{policy:<24} {setting:>11} {np.mean([r.mean_score for r in rs]):>7.3f} "
                         f"{shown:>11} {np.mean(gains):>+8.3f}{spread}")
    return lines


def spend_table(table: RoutingTable, runs: Sequence[ReplayRun]) -> list[str]:
    """The spend-target table: per policy and target, cost (whole stream and second half; as % of the best single
    model's on the routed prompts), score, hull gain and the dial the target ended at (mean ± sd over seeds)."""
    best_cost = table.costs[:, table.best].mean()
    grouped: dict[str, dict[float, list[ReplayRun]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        grouped[run.policy][run.spend].append(run)
    lines = [f"**Spend targets**: each policy routed at `SpendTarget(share x {best_cost:.3g})`, a share of the best "
             f"single model's mean cost per prompt; the target moves the dial to hold the mean cost (mean ± sd over "
             f"seeds; \"late\" is the second half of the stream)", "",
             f"| policy | target | target per prompt ({table.cost_unit}) | cost, % of the best model's | late | "
             f"mean score | hull gain | dial at the end |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for policy, by_share in grouped.items():
        for share in sorted(by_share):
            rs = by_share[share]
            late = [percent(r.cost[len(r.cost) // 2:].mean(), table.costs[r.order, table.best].mean()) for r in rs]
            gains = [run_hull_gain(table, r) for r in rs]
            lines.append(f"| {policy} | {share:.0%} | {share * best_cost:.3g} | "
                         f"{_cell([cost_pct_best(table, r) for r in rs], '.1f')} | {_cell(late, '.1f')} | "
                         f"{_cell([r.mean_score for r in rs], '.3f')} | {_cell(gains, '+.3f')} | "
                         f"{_cell([r.cost_weight for r in rs], '.3f')} |")
    return lines + ["", "A target below what the dial's end (1) spends cannot be met: the dial then stays at 1."
                    " A target above what quality-only routing spends lets the dial fall toward 0.", ""]


def _learning(table: RoutingTable, grouped, dials: list[float], n: int) -> tuple[list[str], dict]:
    """The learning-curve table (hull gain of the running mean after each checkpoint, mean over seeds) and the
    curves for the plot (hull gain after every prompt from the 50th on, mean over seeds), over the `n` prompts
    the learned policies routed."""
    checkpoints = [c for c in LEARNING_CHECKPOINTS if c < n] + [n]
    lines = ["**Learning curve: hull gain of the running mean after the first N prompts**, against the single "
             "models' hull over the same N prompts (mean over seeds; the last column is the whole stream)", "",
             "| policy | dial | " + " | ".join(f"N={c}" for c in checkpoints) + " |",
             "|---|---:|" + "---:|" * len(checkpoints)]
    curves: dict[str, dict[float, np.ndarray]] = {}
    every = np.arange(1, n + 1)
    for policy, by_dial in grouped.items():
        if not _is_bandit(policy):
            continue
        for dial in dials:
            if not by_dial.get(dial):
                continue
            per_seed = [learning_curve(r.score, r.cost, every, table.costs[r.order], table.scores[r.order])
                        for r in by_dial[dial]]
            curve = np.mean(per_seed, axis=0)
            curves.setdefault(policy, {})[dial] = curve
            lines.append(f"| {policy} | {dial:g} | " + " | ".join(f"{curve[c - 1]:+.3f}" for c in checkpoints) + " |")
    return lines + [""], curves


def _aiq_cell(costs: np.ndarray, scores: np.ndarray, cost_range: tuple[float, float]) -> str:
    """AIQ over `cost_range`, or n/a when the range is a point (every single model has the same mean cost)."""
    return f"{aiq(costs, scores, cost_range):.3f}" if cost_range[1] > cost_range[0] else "n/a"


def _apgr_cell(share: np.ndarray, scores: np.ndarray, weak_score: float, strong_score: float) -> str:
    """APGR, or n/a when the two models have the same mean score (there is no gap to recover)."""
    return f"{apgr(share, scores, weak_score, strong_score):.3f}" if strong_score != weak_score else "n/a"


def write_report(out: str | Path, table: RoutingTable, runs: Sequence[tuple[ReplayRun, float | None]],
                 regret_dial: float | None = None, command: str | None = None) -> dict[str, Path]:
    """Write results.csv, summary.md, frontier.png, regret.png and learning.png into `out`; returns their paths.

    `runs` holds the replayed policies and the references (labelled single:<model>, oracle, full-info-ridge)
    with the seconds each took. Regret curves are drawn at `regret_dial` (default: the lowest dial). Runs at a
    spend target are in results.csv and a table of their own; the grids, curves and plots are by dial.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("results.csv", "summary.md", "frontier.png", "regret.png", "learning.png")}
    with paths["results.csv"].open("w", newline="") as f:
        writer = csv.DictWriter(f, RESULT_COLUMNS)
        writer.writeheader()
        writer.writerows(result_row(table, run, seconds) for run, seconds in runs)

    spend_runs = [run for run, _ in runs if run.spend is not None]
    grouped = _by([run for run, _ in runs if run.spend is None])
    dials = sorted({run.cost_weight for run, _ in runs if run.spend is None})
    learned = {p: g for p, g in grouped.items() if not _is_reference(p)}
    best = table.best
    best_score, best_cost = table.scores[:, best].mean(), table.costs[:, best].mean()
    means = {p: (np.array([np.mean([r.mean_cost for r in g[d]]) for d in sorted(g)]),
                 np.array([np.mean([r.mean_score for r in g[d]]) for d in sorted(g)])) for p, g in grouped.items()}
    singles = {m: (float(table.costs[:, k].mean()), float(table.scores[:, k].mean()))
               for k, m in enumerate(table.models)}
    cost_range = (min(c for c, _ in singles.values()), max(c for c, _ in singles.values()))

    plot_frontier(paths["frontier.png"], f"{table.name}: quality-cost frontier (mean over seeds, one point per dial)",
                  {p: means[p] for p in learned}, singles, means["oracle"], frontier(*_singles(table)), table.cost_unit)
    regret_dial = dials[0] if regret_dial is None else regret_dial
    curves = {}
    for policy, by_dial in grouped.items():
        if not _is_bandit(policy) or regret_dial not in by_dial:
            continue
        per_seed = [cumulative_regret(table.scores[r.order], table.costs[r.order], r.cost_weight, r.chosen)
                    for r in by_dial[regret_dial]]
        curves[policy] = {key: np.mean([c[key] for c in per_seed], axis=0) for key in ("oracle", "best_fixed")}
    plot_regret(paths["regret.png"], f"{table.name}: cumulative regret at dial w={regret_dial:g} (mean over seeds)",
                curves)

    seeds = sorted({run.seed for run, _ in runs if run.policy in learned})
    lines = [f"### {table.name}", "", f"{table.summary()}. "
             f"Best single model: {table.models[best]} (score {best_score:.3f}, "
             f"cost {best_cost:.3g} {table.cost_unit}). "
             f"Seeds {seeds}; cells are mean ± sd over seeds. The dial w trades score for cost: a run at w values "
             f"model k on prompt i at score - w * cost / (highest cost on prompt i).", ""]
    routed = _routed(table, grouped)
    if routed < len(table):
        lines[-2] += (f" The learned policies routed {routed} of the {len(table)} prompts: the first "
                      f"{len(table) - routed} of each seed's stream taught them every model's score first (a warm "
                      f"start), and their cells cover the routed prompts.")
    if command:
        lines += ["```", command, "```", ""]
    lines += _grid("Mean score", grouped, dials, lambda r: r.mean_score, ".3f")
    lines += _grid("Mean score, % of the best single model's", grouped, dials, lambda r: score_pct_best(table, r),
                   ".1f")
    lines += _grid(f"Mean cost per prompt ({table.cost_unit})", grouped, dials, lambda r: r.mean_cost, ".3g")
    lines += _grid("Mean cost, % of the best single model's", grouped, dials, lambda r: cost_pct_best(table, r),
                   ".1f")
    lines += _grid("Hull gain: mean score minus the single models' upper concave hull at the same mean cost, both "
                   "over the prompts the run routed (flat beyond the best model's cost and below the cheapest's; "
                   "> 0: better than any fixed choice or fixed split of models)", grouped, dials,
                   lambda r: run_hull_gain(table, r), "+.3f")
    if spend_runs:
        lines += spend_table(table, spend_runs)
    learning_lines, learning_curves = _learning(table, grouped, dials, routed)
    lines += learning_lines
    plot_learning(paths["learning.png"], f"{table.name}: hull gain of the running mean (mean over seeds)",
                  learning_curves)
    lines += _grid("Regret per prompt against the oracle (utility at the dial)", grouped, dials,
                   lambda r: result_row(table, r)["regret_vs_oracle"] / len(r.order), ".4f")
    lines += _grid("Regret per prompt against the best fixed model (negative: better than any single model)",
                   grouped, dials, lambda r: result_row(table, r)["regret_vs_best_fixed"] / len(r.order), ".4f")

    lines += [f"**Area under the quality-cost frontier (AIQ)** over the single models' cost range "
              f"[{cost_range[0]:.3g}, {cost_range[1]:.3g}] {table.cost_unit}: the mean score of the upper concave hull "
              f"of a policy's (cost, score) points across dials (RouterBench; n/a when every single model has the "
              f"same mean cost)."]
    two = len(table.models) == 2
    if two:
        strong = int(np.argmax([s for _, s in singles.values()]))
        weak_score, strong_score = table.scores[:, 1 - strong].mean(), table.scores[:, strong].mean()
        lines[-1] += (f" **APGR** (RouteLLM): the area under the performance gap recovered against the share of "
                      f"calls to the strong model {table.models[strong]}, over the dial sweep (n/a when both "
                      f"models have the same mean score: there is no gap to recover).")
    lines += ["", "| policy | AIQ |" + (" APGR |" if two else ""), "|---|---:|" + ("---:|" if two else "")]
    single_c, single_s = np.array([c for c, _ in singles.values()]), np.array([s for _, s in singles.values()])
    for policy, (costs, scores) in [*((p, means[p]) for p in learned), ("oracle", means["oracle"]),
                                    ("single models, mixed at random", (single_c, single_s))]:
        row = f"| {policy} | {_aiq_cell(costs, scores, cost_range)} |"
        if two:
            if policy in grouped:
                by_dial = grouped[policy]
                share = [np.mean([np.mean(r.chosen == strong) for r in by_dial[d]]) for d in sorted(by_dial)]
                row += f" {_apgr_cell(np.array(share), scores, weak_score, strong_score)} |"
            else:
                row += f" {_apgr_cell(np.array([]), np.array([]), weak_score, strong_score)} |"
        lines.append(row)
    lines += ["", "![frontier](frontier.png)", "", "![regret](regret.png)", "", "![learning](learning.png)", ""]
    paths["summary.md"].write_text("\n".join(lines))
    return paths

"""Metrics of routing runs: utility at a dial, regret, the quality-cost frontier with its area (AIQ), and APGR.

Conventions: a run at dial w values choosing model k on prompt i by the utility
u[i, k] = score[i, k] - w * cost[i, k] / tau_i, with tau_i the highest cost of any model on prompt i (the
router's own normalisation), so at w = 0 utility is quality alone.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

__all__ = ["utility", "oracle_choice", "cumulative_regret", "frontier", "hull_gain", "learning_curve", "aiq", "apgr"]


def utility(scores: np.ndarray, costs: np.ndarray, cost_weight: float) -> np.ndarray:
    """(n, K) utility of every model on every prompt at dial `cost_weight`."""
    tau = costs.max(axis=1, keepdims=True)
    return scores - cost_weight * costs / np.where(tau > 0, tau, 1.0)


def oracle_choice(scores: np.ndarray, costs: np.ndarray, cost_weight: float) -> np.ndarray:
    """For each prompt the model with the highest utility, the cheapest among ties."""
    u = utility(scores, costs, cost_weight)
    best = u >= u.max(axis=1, keepdims=True) - 1e-12
    return np.where(best, costs, np.inf).argmin(axis=1)


def cumulative_regret(scores: np.ndarray, costs: np.ndarray, cost_weight: float,
                      chosen: np.ndarray) -> dict[str, np.ndarray]:
    """Cumulative utility lost by choosing `chosen[t]` on prompt t (rows in routing order).

    Returns {"oracle": regret against the per-prompt best model, "best_fixed": against the one model with
    the highest mean utility in hindsight} (the latter can go negative: a router may beat every single model).
    """
    u = utility(scores, costs, cost_weight)
    got = u[np.arange(len(u)), chosen]
    return {"oracle": np.cumsum(u.max(axis=1) - got), "best_fixed": np.cumsum(u[:, u.mean(axis=0).argmax()] - got)}


def frontier(costs: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The quality-cost frontier of some (cost, score) points: their upper, non-decreasing concave hull.

    Every point on it is reachable by mixing two of the points at random (RouterBench's convex hull of a
    router's operating points). Returns the hull's vertices sorted by cost.
    """
    order = np.lexsort((-np.asarray(scores, float), np.asarray(costs, float)))
    hull: list[tuple[float, float]] = []
    for c, s in zip(np.asarray(costs, float)[order], np.asarray(scores, float)[order]):
        if hull and s <= hull[-1][1]:
            continue  # costs more, scores no better: dominated
        while len(hull) >= 2:
            (c1, s1), (c2, s2) = hull[-2], hull[-1]
            if (s2 - s1) * (c - c1) <= (s - s1) * (c2 - c1):  # middle point on or under the chord
                hull.pop()
            else:
                break
        hull.append((c, s))
    points = np.array(hull)
    return points[:, 0], points[:, 1]


def hull_gain(cost, score, single_costs: np.ndarray, single_scores: np.ndarray) -> np.ndarray:
    """Score above the single models' frontier at the same mean cost: `score` minus the upper concave hull of
    the single models' (mean cost, mean score) points at `cost` (what a fixed split between two models reaches).

    The hull is held flat beyond its ends: at the best model's score above its cost, at the cheapest model's
    score below the cheapest model's cost. Positive: better than any fixed choice of models. Works elementwise.
    """
    hull_c, hull_s = frontier(single_costs, single_scores)
    return np.asarray(score, float) - np.interp(np.asarray(cost, float), hull_c, hull_s)


def learning_curve(scores: np.ndarray, costs: np.ndarray, checkpoints, table_costs: np.ndarray,
                   table_scores: np.ndarray) -> np.ndarray:
    """Hull gain of the running mean of a run's (score, cost) per prompt, in routing order, after each of
    `checkpoints` prompts (a checkpoint beyond the run's length reads the whole run), against the hull of the
    single models over the same prompts: `table_costs` and `table_scores` hold every model's cost and score for
    each prompt the run routed, in routing order (prompts x models)."""
    n = np.minimum(np.asarray(checkpoints, int), len(scores))
    if n.size == 0:
        raise ConfigError("checkpoints must list at least one prompt count, got none")
    if len(scores) == 0 or n.min() < 1:
        raise ValueError(f"checkpoints must be >= 1 and the run non-empty, got {list(checkpoints)} for {len(scores)}")
    if np.shape(table_costs) != np.shape(table_scores) or len(table_costs) != len(scores):
        raise ValueError(f"table_costs and table_scores must be (prompts, models) with the run's {len(scores)} "
                         f"prompts, got {np.shape(table_costs)} and {np.shape(table_scores)}")
    mean_s, mean_c = np.cumsum(scores)[n - 1] / n, np.cumsum(costs)[n - 1] / n
    single_c = np.cumsum(table_costs, axis=0)[n - 1] / n[:, None]
    single_s = np.cumsum(table_scores, axis=0)[n - 1] / n[:, None]
    return np.array([hull_gain(c, s, sc, ss) for c, s, sc, ss in zip(mean_c, mean_s, single_c, single_s)])


def aiq(costs: np.ndarray, scores: np.ndarray, cost_range: tuple[float, float]) -> float:
    """Average quality over `cost_range` of the frontier of the points (RouterBench's AIQ).

    The frontier is held flat beyond its cheapest and its costliest vertex. Compare routers on one range,
    e.g. from the cheapest to the costliest single model's mean cost.
    """
    lo, hi = map(float, cost_range)
    if not hi > lo:
        raise ValueError(f"cost_range must have hi > lo, got {cost_range!r}")
    hull_c, hull_s = frontier(costs, scores)
    grid = np.unique(np.concatenate([[lo, hi], hull_c[(hull_c > lo) & (hull_c < hi)]]))
    return float(np.trapezoid(np.interp(grid, hull_c, hull_s), grid) / (hi - lo))


def apgr(strong_share: np.ndarray, scores: np.ndarray, weak_score: float, strong_score: float) -> float:
    """RouteLLM's average performance gap recovered on a two-model set.

    `strong_share[j]` is the share of prompts a router sent to the strong model at operating point j and
    `scores[j]` its mean score there. PGR = (score - weak) / (strong - weak); APGR is the area under PGR
    as a function of the strong share over [0, 1], with the all-weak (0, 0) and all-strong (1, 1) ends added.
    """
    if strong_score == weak_score:
        raise ValueError("the strong and the weak model have the same mean score: APGR is undefined")
    share = np.concatenate([[0.0], np.asarray(strong_share, float), [1.0]])
    pgr = np.concatenate([[0.0], (np.asarray(scores, float) - weak_score) / (strong_score - weak_score), [1.0]])
    order = np.argsort(share, kind="stable")
    return float(np.trapezoid(pgr[order], share[order]))

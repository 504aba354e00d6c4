"""What a policy learns from: one observed outcome of one model on one prompt vector."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

__all__ = ["Outcome", "by_model", "normalised_costs"]


@dataclass(frozen=True)
class Outcome:
    """A reward in [0, 1] of `model` on prompt vector `vector`, with the routing context when there was one.

    `cost` is the normalised cost c / tau the router passed for `model` and `cost_weight` the request's dial
    (None: unknown, e.g. offline data); `propensity` is the probability the policy gave `model` (None: not
    routed); `weight` is how many online observations this one counts as (priors).
    """

    vector: np.ndarray
    model: str
    reward: float
    cost: float | None = None
    cost_weight: float | None = None
    propensity: float | None = None
    weight: float = 1.0


def normalised_costs(costs: Iterable[float]) -> np.ndarray:
    """Costs divided by the largest of them, tau (1 when every cost is 0): what policies see, in [0, 1]."""
    costs = np.array(list(costs), dtype=float)
    return costs / (costs.max() or 1.0)


def by_model(outcomes: Sequence[Outcome]) -> list[tuple[str, np.ndarray, np.ndarray, float | np.ndarray]]:
    """The outcomes grouped by model, in first-seen order: (model, vectors (n, dim), rewards (n,), weights: one
    number when they are all equal, else (n,))."""
    groups = []
    for model in dict.fromkeys(o.model for o in outcomes):
        rows = [o for o in outcomes if o.model == model]
        weights = {o.weight for o in rows}
        groups.append((model, np.array([o.vector for o in rows], dtype=float),
                       np.array([o.reward for o in rows], dtype=float),
                       weights.pop() if len(weights) == 1 else np.array([o.weight for o in rows], dtype=float)))
    return groups

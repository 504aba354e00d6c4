"""What a policy learns from: one observed outcome of one model on one prompt vector."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

__all__ = ["Outcome", "normalised_costs"]


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

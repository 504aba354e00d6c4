"""Baselines that do not learn: uniformly random, one fixed model, and the cheapest model (each tried once first)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import ConfigError, NoEligibleModelError
from .base import Policy, PolicyConfig, one_hot_argmax, register


@register
class RandomPolicy(Policy):
    """Every eligible model with equal probability."""

    name = "random"

    def probabilities(self, x: np.ndarray, arms: Sequence[int], cost: np.ndarray,
                      cost_weight: float) -> tuple[np.ndarray, np.ndarray]:
        return np.full(len(arms), 1.0 / len(arms)), np.full(len(arms), np.nan)


@dataclass(frozen=True)
class FixedConfig(PolicyConfig):
    model: str = ""  # the one model to route to

    STATE_SETTINGS = frozenset()  # nothing is learned

    def validate(self) -> None:
        if not self.model:
            raise ConfigError("policy 'fixed' needs model=<name of one of the router's models>")


@register
class FixedPolicy(Policy):
    """Always the configured model; a request on which it is not eligible raises NoEligibleModelError."""

    name = "fixed"
    Config = FixedConfig
    config: FixedConfig

    def __init__(self, dim: int, arms: Sequence[str], config: FixedConfig | None = None, seed: int | None = None):
        super().__init__(dim, arms, config, seed)
        if self.config.model not in self.arms:
            raise ConfigError(f"policy 'fixed': model {self.config.model!r} is not one of the models {self.arms}")

    def probabilities(self, x: np.ndarray, arms: Sequence[int], cost: np.ndarray,
                      cost_weight: float) -> tuple[np.ndarray, np.ndarray]:
        names = [self.arms[a] for a in arms]
        if self.config.model not in names:
            raise NoEligibleModelError(f"fixed model {self.config.model!r} is not eligible for this request (outside "
                                       "its models=, or too small for it)")
        return (np.array(names) == self.config.model).astype(float), np.full(len(arms), np.nan)


@register
class CheapestPolicy(Policy):
    """The model with the lowest predicted cost for the request, once every model of unknown cost has been tried.

    The cost model predicts a model it knows nothing about (no prices, no settled call) at the mean of the others'
    predictions, which would hide a cheaper model behind the first cheap one called. So a model not yet tried whose
    predicted cost is that mean (all costs, when none is known) is offered first, once, as a request's only choice
    (its call then teaches the cost model its cost); then the choice is greedy. Which models were tried is not
    saved with the router: a loaded router tries each unknown one once again.
    """

    name = "cheapest"

    def __init__(self, dim: int, arms: Sequence[str], config: PolicyConfig | None = None, seed: int | None = None):
        self.tried: set[str] = set()
        super().__init__(dim, arms, config, seed)

    def remove_arm(self, arm: str) -> None:
        super().remove_arm(arm)
        self.tried.discard(arm)

    def probabilities(self, x: np.ndarray, arms: Sequence[int], cost: np.ndarray,
                      cost_weight: float) -> tuple[np.ndarray, np.ndarray]:
        cost = np.asarray(cost, dtype=float)
        unknown = [i for i, a in enumerate(arms) if self.arms[a] not in self.tried and _imputed(cost, i)]
        if not unknown:
            return one_hot_argmax(-cost), np.full(len(arms), np.nan)
        self.tried.add(self.arms[arms[unknown[0]]])
        return (np.arange(len(arms)) == unknown[0]).astype(float), np.full(len(arms), np.nan)


def _imputed(cost: np.ndarray, i: int) -> bool:
    """Whether `cost[i]` is what the cost model predicts for a model it knows nothing about: the mean of the
    other costs (those that differ from it), or any cost when all are equal."""
    others = cost[~np.isclose(cost, cost[i], rtol=1e-9, atol=0.0)]
    return others.size == 0 or bool(np.isclose(others.mean(), cost[i], rtol=1e-9, atol=0.0))

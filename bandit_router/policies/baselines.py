"""Baselines that do not learn: uniformly random, one fixed model, and the cheapest model."""

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
    """Always the model with the lowest predicted cost for the request."""

    name = "cheapest"

    def probabilities(self, x: np.ndarray, arms: Sequence[int], cost: np.ndarray,
                      cost_weight: float) -> tuple[np.ndarray, np.ndarray]:
        return one_hot_argmax(-np.asarray(cost)), np.full(len(arms), np.nan)

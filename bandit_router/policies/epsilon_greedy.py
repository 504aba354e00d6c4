"""Epsilon-greedy over the per-model ridge predictions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..checks import check_non_negative
from .base import one_hot_argmax, register
from .ridge import RidgeConfig, RidgePolicy


@dataclass(frozen=True)
class EpsilonGreedyConfig(RidgeConfig):
    epsilon: float = 0.05  # share of requests routed uniformly at random

    def validate(self) -> None:
        super().validate()
        check_non_negative(self.epsilon, "epsilon", upper=1.0)


@register
class EpsilonGreedy(RidgePolicy):
    """With probability epsilon a uniformly random model, else the best predicted value."""

    name = "epsilon-greedy"
    Config = EpsilonGreedyConfig
    config: EpsilonGreedyConfig

    def probabilities(self, x: np.ndarray, arms: Sequence[int], cost: np.ndarray,
                      cost_weight: float) -> tuple[np.ndarray, np.ndarray]:
        mean, _ = self.predict(x, arms)
        eps = self.config.epsilon
        return (1 - eps) * one_hot_argmax(mean - cost_weight * cost) + eps / len(mean), mean

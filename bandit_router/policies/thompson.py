"""Linear Gaussian Thompson sampling over the per-model ridge posteriors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..checks import check_integer, check_non_negative
from .base import register
from .ridge import RidgeConfig, RidgePolicy


@dataclass(frozen=True)
class ThompsonConfig(RidgeConfig):
    scale: float = 0.3  # v: posterior standard deviation multiplier
    draws: int = 256  # Monte Carlo draws used to compute the propensities

    def validate(self) -> None:
        super().validate()
        check_non_negative(self.scale, "scale")
        check_integer(self.draws, "draws", 1, 100_000)


@register
class Thompson(RidgePolicy):
    """Each model's quality on this prompt is drawn from N(theta_a.z, v^2 z^T A_a^-1 z); the best draw wins.

    The arms' posteriors are independent, so the probability that each arm wins is estimated from `draws`
    joint draws of the scalar predictions; the router then samples the choice from those probabilities,
    which is Thompson sampling with a propensity that off-policy evaluation can use.
    """

    name = "thompson"
    Config = ThompsonConfig
    config: ThompsonConfig

    def probabilities(self, x: np.ndarray, arms: Sequence[int], cost: np.ndarray,
                      cost_weight: float) -> tuple[np.ndarray, np.ndarray]:
        mean, std = self.predict(x, arms)
        draws = mean + self.config.scale * std * self.rng.standard_normal((self.config.draws, len(mean))) - cost_weight * cost
        wins = np.bincount(draws.argmax(axis=1), minlength=len(mean))
        return wins / wins.sum(), mean

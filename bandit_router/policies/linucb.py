"""LinUCB: choose the model with the highest upper confidence bound on quality, less the cost term."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .base import UpperConfidence, register
from .ridge import RidgeConfig, RidgePolicy


@dataclass(frozen=True)
class LinUCBConfig(RidgeConfig):
    alpha: float = 0.5  # width of the confidence bonus

    def validate(self) -> None:
        super().validate()
        if not (self.alpha >= 0 and np.isfinite(self.alpha)):
            raise ConfigError(f"alpha must be a finite number >= 0, got {self.alpha!r}")


@register
class LinUCB(UpperConfidence, RidgePolicy):
    """argmax_a theta_a.z + alpha sqrt(z^T A_a^-1 z) - w_c cost_a (deterministic; ties split evenly)."""

    name = "linucb"
    Config = LinUCBConfig
    config: LinUCBConfig

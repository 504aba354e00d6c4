"""LinUCB: choose the model with the highest upper confidence bound on quality, less the cost term."""

from __future__ import annotations

from dataclasses import dataclass

from ..checks import check_non_negative
from .base import UpperConfidence, register
from .ridge import RidgeConfig, RidgePolicy


@dataclass(frozen=True)
class LinUCBConfig(RidgeConfig):
    alpha: float = 0.5  # width of the confidence bonus

    def validate(self) -> None:
        super().validate()
        check_non_negative(self.alpha, "alpha")


@register
class LinUCB(UpperConfidence, RidgePolicy):
    """argmax_a theta_a.z + alpha sqrt(z^T A_a^-1 z) - w_c cost_a (deterministic; ties split evenly)."""

    name = "linucb"
    Config = LinUCBConfig
    config: LinUCBConfig

"""Per-model Bayesian ridge regression of quality on the prompt vector: the state shared by the linear policies.

For each model a: A_a = lambda I + sum z z^T and b_a = sum r z (z = x with a constant 1 appended), kept as
additive sufficient statistics so that updates from many replicas merge exactly. A_a^-1 is maintained by
Sherman-Morrison rank-1 updates and never re-inverted on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import ConfigError
from .base import Policy, PolicyConfig

__all__ = ["RidgeConfig", "RidgePolicy"]


@dataclass(frozen=True)
class RidgeConfig(PolicyConfig):
    regularization: float = 1.0  # lambda: prior precision of each model's weights
    intercept: bool = True  # append a constant feature so each model learns its base rate

    def validate(self) -> None:
        if not (self.regularization > 0 and np.isfinite(self.regularization)):
            raise ConfigError(f"regularization must be a finite number > 0, got {self.regularization!r}")


class RidgePolicy(Policy):
    """Holds and updates the per-model ridge statistics; subclasses decide how to choose."""

    Config = RidgeConfig
    config: RidgeConfig

    def __init__(self, dim: int, arms: Sequence[str], config: RidgeConfig | None = None, seed: int | None = None):
        config = config if config is not None else self.Config()
        self.p = dim + int(config.intercept)
        self.A = np.zeros((0, self.p, self.p))
        self.A_inv = np.zeros((0, self.p, self.p))
        self.b = np.zeros((0, self.p))
        self.theta = np.zeros((0, self.p))
        super().__init__(dim, arms, config, seed)

    def features(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.dim,):
            raise ConfigError(f"prompt vector has shape {x.shape}, expected ({self.dim},)")
        return np.append(x, 1.0) if self.config.intercept else x

    def add_arm(self, arm: str) -> None:
        super().add_arm(arm)
        lam = self.config.regularization
        self.A = np.concatenate([self.A, lam * np.eye(self.p)[None]])
        self.A_inv = np.concatenate([self.A_inv, np.eye(self.p)[None] / lam])
        self.b = np.concatenate([self.b, np.zeros((1, self.p))])
        self.theta = np.concatenate([self.theta, np.zeros((1, self.p))])

    def remove_arm(self, arm: str) -> None:
        k = self.index(arm)
        super().remove_arm(arm)
        self.A, self.A_inv, self.b, self.theta = (np.delete(m, k, axis=0) for m in (self.A, self.A_inv, self.b, self.theta))

    def predict(self, x: np.ndarray, arms: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean quality and its standard deviation (unit noise) for each arm in `arms`."""
        z = self.features(x)
        arms = np.asarray(arms, dtype=int)
        mean = self.theta[arms] @ z
        var = np.einsum("kp,p->k", self.A_inv[arms] @ z, z)
        return mean, np.sqrt(np.maximum(var, 0.0))

    def update(self, x: np.ndarray, arm: str, reward: float) -> None:
        k = self.index(arm)
        z = self.features(x)
        Az = self.A_inv[k] @ z
        self.A_inv[k] -= np.outer(Az, Az) / (1.0 + z @ Az)
        self.A[k] += np.outer(z, z)
        self.b[k] += reward * z
        self.theta[k] = self.A_inv[k] @ self.b[k]

    def state(self) -> dict[str, np.ndarray]:
        return {"A": self.A, "A_inv": self.A_inv, "b": self.b}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.A, self.A_inv, self.b = state["A"], state["A_inv"], state["b"]
        self.theta = np.einsum("kpq,kq->kp", self.A_inv, self.b)

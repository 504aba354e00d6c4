"""Shared LinUCB: one quality model over (prompt, model features), plus a per-model correction.

A model's predicted quality on prompt vector x is

    q_k(x) = theta_s . (u(x) kron v_k)  +  theta_k . [x, 1]

where u(x) = [P x, 1] is a fixed random projection of the prompt, v_k = [G e_k, log10 price, log10 size,
size known, 1] holds the model's features (e_k an embedding of its description with the router's encoder),
theta_s is learned from every model's feedback and theta_k from model k's residual (reward less the shared
prediction) under a stronger prior. A model added at run time with features is predicted by the shared part
from its first request on; one added without features starts from the per-model part alone, as in LinUCB.
Choice: argmax q_k + alpha sqrt(var_s + var_k) - w_c cost_k.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..checks import check_integer, check_non_negative, check_positive
from ..errors import ConfigError
from ..models import Model
from ..outcome import Outcome, by_model
from .base import Policy, PolicyConfig, UpperConfidence, register

__all__ = ["SharedLinUCB", "SharedLinUCBConfig", "model_features"]

EXTRA_FEATURES = 3  # log10 price, log10 size, size known


def model_features(card: Model, encoder, size: float | None = None) -> np.ndarray:
    """Features of a model for shared-linucb: its description's embedding (with the router's `encoder`), the
    log10 of its mean price in USD per million tokens, and the log10 of its size in billions of parameters
    (`size`, optional)."""
    if not card.description.strip():
        raise ConfigError(f"Model {card.name!r} has no description to embed; give Model(description=...)")
    if size is not None:
        check_positive(size, "size", unit="billions of parameters")
    price = (card.input_cost_per_token + card.output_cost_per_token) / 2 * 1e6
    extra = [math.log10(max(price, 1e-3)), math.log10(size) if size else 0.0, 1.0 if size else 0.0]
    return np.concatenate([np.asarray(encoder(card.description), dtype=float), extra])


@dataclass(frozen=True)
class SharedLinUCBConfig(PolicyConfig):
    alpha: float = 0.5  # width of the confidence bonus
    regularization: float = 1.0  # prior precision of the shared weights
    model_regularization: float = 4.0  # prior precision of each model's correction (higher: trust the shared part)
    prompt_dim: int = 16  # size of the prompt projection in the shared part
    model_dim: int = 8  # size of the description projection in the shared part
    projection_seed: int = 0  # seed of the fixed random projections
    feature_scale: float = 0.25  # weight of model features against the shared intercept (lower: closer to the average model)

    STATE_SETTINGS = frozenset({"regularization", "model_regularization", "prompt_dim", "model_dim",
                                "projection_seed", "feature_scale"})  # all but alpha shape the learned statistics

    def validate(self) -> None:
        check_non_negative(self.alpha, "alpha")
        for key in ("regularization", "model_regularization", "feature_scale"):
            check_positive(getattr(self, key), key)
        for key in ("prompt_dim", "model_dim"):
            check_integer(getattr(self, key), key, 1, 256)


def _projection(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """`rows` orthonormal directions in R^cols, scaled so a unit vector keeps about unit norm."""
    q, _ = np.linalg.qr(rng.standard_normal((cols, min(rows, cols))))
    return q.T * math.sqrt(cols / min(rows, cols))


@register
class SharedLinUCB(UpperConfidence, Policy):
    """LinUCB with a quality model shared across models through their features (see the module docstring)."""

    name = "shared-linucb"
    Config = SharedLinUCBConfig
    config: SharedLinUCBConfig
    uses_features = True

    def __init__(self, dim: int, arms: Sequence[str], config: SharedLinUCBConfig | None = None,
                 seed: int | None = None, features: Mapping[str, np.ndarray] | None = None):
        config = config if config is not None else self.Config()
        rng = np.random.default_rng(config.projection_seed)
        self.P = _projection(config.prompt_dim, dim, rng)
        self.G = _projection(config.model_dim, dim, rng)
        self.p = dim + 1
        self.n_features = dim + EXTRA_FEATURES
        self.D = (self.P.shape[0] + 1) * (self.G.shape[0] + EXTRA_FEATURES + 1)
        self.A_s = config.regularization * np.eye(self.D)
        self.A_s_inv = np.eye(self.D) / config.regularization
        self.b_s = np.zeros(self.D)
        self.theta_s = np.zeros(self.D)
        self.A = np.zeros((0, self.p, self.p))
        self.A_inv = np.zeros((0, self.p, self.p))
        self.b = np.zeros((0, self.p))
        self.theta = np.zeros((0, self.p))
        self.features = np.zeros((0, self.n_features))
        self.has_features = np.zeros(0)
        self._initial = dict(features or {})
        super().__init__(dim, arms, config, seed)
        del self._initial

    # -- arms -----------------------------------------------------------------------------------------------
    def add_arm(self, arm: str, features: np.ndarray | None = None) -> None:
        """Start learning about a model; with `features` (see `model_features`) the shared part predicts it."""
        features = self._initial.get(arm) if features is None and hasattr(self, "_initial") else features
        if features is not None:
            features = np.asarray(features, dtype=float)
            if features.shape != (self.n_features,) or not np.isfinite(features).all():
                raise ConfigError(f"features of {arm!r} must be {self.n_features} finite numbers "
                                  f"(see model_features), got shape {features.shape}")
        super().add_arm(arm)
        lam = self.config.model_regularization
        self.A = np.concatenate([self.A, lam * np.eye(self.p)[None]])
        self.A_inv = np.concatenate([self.A_inv, np.eye(self.p)[None] / lam])
        self.b = np.concatenate([self.b, np.zeros((1, self.p))])
        self.theta = np.concatenate([self.theta, np.zeros((1, self.p))])
        self.features = np.concatenate([self.features, (np.zeros(self.n_features) if features is None
                                                        else features)[None]])
        self.has_features = np.append(self.has_features, float(features is not None))

    def remove_arm(self, arm: str) -> None:
        k = self.index(arm)
        super().remove_arm(arm)
        for key in ("A", "A_inv", "b", "theta", "features", "has_features"):
            setattr(self, key, np.delete(getattr(self, key), k, axis=0))

    # -- features -------------------------------------------------------------------------------------------
    def _z(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.dim,):
            raise ConfigError(f"prompt vector has shape {x.shape}, expected ({self.dim},)")
        return np.append(x, 1.0)

    def _shared(self, X: np.ndarray, arms: np.ndarray) -> np.ndarray:
        """Shared features u(x) kron v_k for prompt rows X (n, dim) and arm indices (n,); zero for bare arms."""
        U = np.column_stack([X @ self.P.T, np.ones(len(X))])
        F = self.features[arms]
        V = np.column_stack([self.config.feature_scale * np.column_stack([F[:, : self.dim] @ self.G.T, F[:, self.dim:]]),
                             np.ones(len(F))])
        return np.einsum("ni,nj->nij", U, V).reshape(len(X), -1) * self.has_features[arms, None]

    # -- choosing -------------------------------------------------------------------------------------------
    def predict(self, x: np.ndarray, arms: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Predicted quality and its standard deviation for each arm in `arms`."""
        z = self._z(x)
        arms = np.asarray(arms, dtype=int)
        S = self._shared(np.repeat(z[None, :-1], len(arms), axis=0), arms)
        mean = S @ self.theta_s + self.theta[arms] @ z
        var = np.einsum("kd,kd->k", S @ self.A_s_inv, S) + np.einsum("kp,p->k", self.A_inv[arms] @ z, z)
        return mean, np.sqrt(np.maximum(var, 0.0))

    # -- learning -------------------------------------------------------------------------------------------
    def _update(self, x: np.ndarray, arm: str, reward: float) -> None:
        k = self.index(arm)
        z = self._z(x)
        if self.has_features[k]:
            s = self._shared(z[None, :-1], np.array([k]))[0]
            As = self.A_s_inv @ s
            self.A_s_inv -= np.outer(As, As) / (1.0 + s @ As)
            self.A_s += np.outer(s, s)
            self.b_s += reward * s
            self.theta_s = self.A_s_inv @ self.b_s
            reward -= s @ self.theta_s  # the model's own part learns what the shared part misses
        Az = self.A_inv[k] @ z
        self.A_inv[k] -= np.outer(Az, Az) / (1.0 + z @ Az)
        self.A[k] += np.outer(z, z)
        self.b[k] += reward * z
        self.theta[k] = self.A_inv[k] @ self.b[k]

    def learn(self, outcomes: Sequence[Outcome]) -> None:
        """One outcome of weight 1 is a rank-1 update. Several (full information, e.g. a prior) are added at
        once, each counting its `weight`: the shared part first (from every featured model), then each model's
        residual."""
        if len(outcomes) == 1 and outcomes[0].weight == 1.0:
            self._update(outcomes[0].vector, outcomes[0].model, outcomes[0].reward)
            return
        groups = [(self.index(arm), X, rewards, w) for arm, X, rewards, w in by_model(outcomes)]
        for a, X, rewards, w in groups:
            if self.has_features[a]:
                S = self._shared(X, np.full(len(X), a))
                self.A_s += w * S.T @ S
                self.b_s += w * S.T @ rewards
        self.A_s_inv = np.linalg.inv(self.A_s)
        self.theta_s = self.A_s_inv @ self.b_s
        for a, X, rewards, w in groups:
            Z = np.column_stack([X, np.ones(len(X))])
            residual = rewards - self._shared(X, np.full(len(X), a)) @ self.theta_s
            self.A[a] += w * Z.T @ Z
            self.b[a] += w * Z.T @ residual
            self.A_inv[a] = np.linalg.inv(self.A[a])
            self.theta[a] = self.A_inv[a] @ self.b[a]

    # -- state ----------------------------------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        return {"A_s": self.A_s, "A_s_inv": self.A_s_inv, "b_s": self.b_s, "A": self.A, "A_inv": self.A_inv,
                "b": self.b, "features": self.features, "has_features": self.has_features}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        for key, value in state.items():
            setattr(self, key, value)
        self.theta_s = self.A_s_inv @ self.b_s
        self.theta = np.zeros_like(self.b)
        for k in range(len(self.b)):  # the same product as `update`, so a loaded policy predicts bit for bit alike
            self.theta[k] = self.A_inv[k] @ self.b[k]

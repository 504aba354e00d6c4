"""Shrunk LinUCB: per-model ridge statistics, with the prompt weights shrunk much harder than the intercept.

Each model a keeps the additive sufficient statistics of RidgePolicy (sum z z^T, sum r z over z = [x, 1]), so
replicas merge them exactly and the priors write into them; only the prior precision differs: D =
diag(prompt_regularization, ..., regularization) instead of regularization * I. A model's mean is learned from
every rating (weak prior on the intercept) while its prompt-dependent part moves away from 0 only as far as the
ratings support it (strong prior on the prompt weights): few ratings give per-model means, many give context.
This curbs the optimizer's curse of an argmax over many noisy 385-parameter fits and the exploration their wide
confidence intervals cause. The choice is the UCB utility mean + alpha sd - cost_weight cost, either the argmax
or, with temperature > 0, a softmax over it: near-ties are split at random, so the dial moves cost smoothly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..errors import ConfigError
from ..outcome import Outcome
from .base import one_hot_argmax, register
from .ridge import RidgeConfig, RidgePolicy, _Delta

__all__ = ["ShrunkLinUCB", "ShrunkLinUCBConfig"]


@dataclass(frozen=True)
class ShrunkLinUCBConfig(RidgeConfig):
    regularization: float = 0.1  # prior precision of each model's intercept: weak, so every model is tried
    prompt_regularization: float = 30.0  # prior precision of each model's prompt weights
    alpha: float = 0.5  # width of the confidence bonus
    temperature: float = 0.0  # softmax temperature over the utilities (0: argmax)
    min_ratings: int = 10  # a model with fewer ratings than this is chosen first (evenly among such models)

    def validate(self) -> None:
        super().validate()
        if not self.intercept:
            raise ConfigError("intercept must be True: the intercept is the part shrunk least")
        if not (isinstance(self.min_ratings, int) and not isinstance(self.min_ratings, bool)
                and 0 <= self.min_ratings <= 10**6):
            raise ConfigError(f"min_ratings must be an integer in [0, 1000000], got {self.min_ratings!r}")
        for name in ("prompt_regularization", "alpha", "temperature"):
            value = getattr(self, name)
            low_ok = value > 0 if name == "prompt_regularization" else value >= 0
            if not (low_ok and np.isfinite(value)):
                raise ConfigError(f"{name} must be a finite number {'>' if name == 'prompt_regularization' else '>='}"
                                  f" 0, got {value!r}")


@register
class ShrunkLinUCB(RidgePolicy):
    """argmax (or softmax) over mean + alpha sd - cost_weight cost of a ridge fit whose prompt weights are shrunk
    with precision `prompt_regularization` and whose intercept with `regularization`."""

    name = "shrunk-linucb"
    Config = ShrunkLinUCBConfig
    config: ShrunkLinUCBConfig

    def _prior_precision(self) -> np.ndarray:
        """D: the prior precision of one model's weights (prompt weights, then the intercept)."""
        return np.diag(np.append(np.full(self.dim, self.config.prompt_regularization), self.config.regularization))

    def _ridge_excess(self) -> np.ndarray:
        """lambda I - D: what RidgePolicy's own bookkeeping (which assumes lambda I) must be corrected by."""
        return self.config.regularization * np.eye(self.p) - self._prior_precision()

    # -- RidgePolicy with D in place of lambda I -----------------------------------------------------------
    def add_arm(self, arm: str) -> None:
        super().add_arm(arm)
        D = self._prior_precision()
        self._A[-1], self.A_inv[-1] = D, np.diag(1.0 / np.diag(D))
        self._recount()

    def remove_arm(self, arm: str) -> None:
        super().remove_arm(arm)
        self._recount()

    def set_prior(self, arm: str, mean: np.ndarray, precision: np.ndarray) -> None:
        super().set_prior(arm, mean, precision)
        if self._delta is not None:
            self._base[arm]["A"] += self._ridge_excess()
        self._recount()

    def share(self) -> None:
        fresh = self._delta is None
        super().share()
        if fresh:
            for base in self._base.values():
                base["A"] += self._ridge_excess()

    def install_totals(self, totals: Mapping[str, Mapping[str, np.ndarray]]) -> None:
        super().install_totals(totals)
        A = self.A - self._ridge_excess()[None]
        self.A, self.A_inv = A, np.linalg.inv(A)
        self.theta = np.einsum("kij,kj->ki", self.A_inv, self.b)
        self._recount()

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        super()._set_state(state)
        self._recount()

    def _recount(self) -> None:
        """Ratings (weighted) per model, read off A: its intercept's precision less the prior's."""
        self.ratings = self.A[:, -1, -1] - self.config.regularization

    # -- learning ------------------------------------------------------------------------------------------
    def learn(self, outcomes: Sequence[Outcome]) -> None:
        """Add each outcome's rating to its model's statistics, counted `weight` times."""
        for outcome in outcomes:
            if not (outcome.weight > 0 and np.isfinite(outcome.weight)):
                raise ConfigError(f"outcome weight must be a finite number > 0, got {outcome.weight!r}")
            root = np.sqrt(outcome.weight)
            self._rank_one(outcome.model, root * self.features(outcome.vector), root * float(outcome.reward))

    def _rank_one(self, arm: str, z: np.ndarray, reward: float) -> None:
        """A += z z^T, b += reward z for `arm` (A^-1 by Sherman-Morrison; A's outer products summed in batches)."""
        k = self.index(arm)
        A_inv = self.A_inv[k]
        Az = A_inv @ z
        A_inv -= np.multiply(Az[:, None], Az / (1.0 + z @ Az), out=self._outer)
        self._unsummed[k].append(z.copy())
        if len(self._unsummed[k]) >= 64:
            self._sum_outer(k)
        self.b[k] += reward * z
        self.theta[k] = A_inv @ self.b[k]
        self.ratings[k] += z[-1] ** 2
        if self._delta is not None:
            self._delta.setdefault(arm, _Delta(self.p)).add(z, reward)

    def update(self, x: np.ndarray, arm: str, reward: float) -> None:
        self.learn([Outcome(np.asarray(x), arm, float(reward))])

    def update_routed(self, x: np.ndarray, arm: str, reward: float, cost: float, cost_weight: float,
                      propensity: float) -> None:
        self.learn([Outcome(np.asarray(x), arm, float(reward), cost, cost_weight, propensity)])

    def absorb(self, X: np.ndarray, rewards: np.ndarray, arms: Sequence[str], weight: float = 1.0) -> None:
        self.learn([Outcome(x, arm, float(r), weight=weight) for x, row in zip(X, rewards) for arm, r in zip(arms, row)])

    # -- choosing ------------------------------------------------------------------------------------------
    def probabilities(self, x: np.ndarray, arms: Sequence[int], cost: np.ndarray,
                      cost_weight: float) -> tuple[np.ndarray, np.ndarray]:
        mean, sd = self.predict(x, arms)
        if self.config.min_ratings:
            unrated = self.ratings[np.asarray(arms, dtype=int)] < self.config.min_ratings - 1e-9
            if unrated.any():
                return unrated / unrated.sum(), mean
        utility = mean + self.config.alpha * sd - cost_weight * np.asarray(cost, float)
        if self.config.temperature == 0:
            return one_hot_argmax(utility), mean
        weights = np.exp((utility - utility.max()) / self.config.temperature)
        return weights / weights.sum(), mean

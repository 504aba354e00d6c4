"""Shrunk LinUCB: per-model ridge statistics, with the prompt weights shrunk much harder than the intercept.

Each model a keeps the additive sufficient statistics of RidgePolicy (sum z z^T, sum r z over z = [x, 1]), so
replicas merge them exactly and the priors write into them; only the prior precision differs: D_a =
diag(lambda_a, ..., regularization) instead of regularization * I. A model's mean is learned from every rating
(weak prior on the intercept); its prompt weights start strongly shrunk (lambda_a = prompt_regularization) and
each model's lambda_a is re-chosen from a grid by empirical Bayes (the marginal likelihood of its ratings, from
the same statistics) after 256, 512, 1024, ... ratings in all, so the prompt-dependent part earns its weight:
a model whose ratings the prompt does not explain stays near its mean. This curbs the optimizer's curse of an
argmax over many noisy 385-parameter fits. The choice is the argmax of quality - cost_weight cost, quality being
the prediction plus a bonus, alpha / sqrt(ratings) by default (optimism about the model's mean only; the prompt
part is used greedily) or alpha x the prediction's sd, and 1 (the best rating) for a model rated fewer than
`min_ratings` times (its first tries), so exploration is cost-aware: at a high dial an unrated costly model is
not tried. First tries stop early for a model that is clearly worse: from 3 ratings on, once its predicted
quality + z sd/sqrt(ratings) is below another model's - z sd/sqrt(ratings) (z = `elimination`, sd = 0.5, the
largest a rating in [0, 1] can have); quality alone, as cost in the test would end a dearer, better model's tries
on a few unlucky ratings at the dials where it matters. With temperature > 0, a softmax over the utilities
instead of the argmax.

A share min(0.2, exploration / sqrt(1 + ratings in all)) of each request's probability is spread evenly over the
contenders: the models rated 3 times or more and not clearly worse at the request's trade-off (the same test on
quality less dial x cost, so at a high dial a costly model is not explored; unrated models have their first
tries). A model chosen only where the others are predicted to fail is rated on the hardest prompts, and its fit,
shrunk toward its mean, reads them as its level (on llmrouter-9 such models were estimated 0.26-0.40 below their
true means after 6,108 prompts); a few ratings on prompts drawn from the whole stream, most of them early, keep
every contender's level in view.

The dial is dithered: a request is routed at one of 16 trade-offs spread log-normally around it (cost_weight x
exp(dial_spread x a standard normal quantile)), each as likely, and the probabilities are their average. When
most prompts' quality gaps are alike, a fixed trade-off switches them all at once, so mean cost would drop in
a cliff between two nearby dials; dithered, it falls smoothly, and every model that is best at a nearby
trade-off keeps a propensity above 0 for off-policy evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Mapping, Sequence

import numpy as np
from scipy.linalg import solve_triangular

from ..checks import check_integer, check_non_negative, check_positive
from ..errors import ConfigError, StateFormatError
from ..outcome import Outcome
from .base import register
from .ridge import RidgeConfig, RidgePolicy

__all__ = ["ShrunkLinUCB", "ShrunkLinUCBConfig"]

_GRID = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)  # prompt-weight precisions empirical Bayes chooses from
_FIRST_REFIT = 256  # ratings before the first empirical Bayes choice; then at twice as many each time
_DITHER = np.array([NormalDist().inv_cdf((i + 0.5) / 16) for i in range(16)])  # the trade-offs' normal quantiles
_TESTED = 3  # ratings before a model's first tries can stop early
_RATING_SD = 0.5  # the largest standard deviation of a rating in [0, 1]
_MAX_EXPLORATION = 0.2  # the largest share of a request's probability spread over the contenders


@dataclass(frozen=True)
class ShrunkLinUCBConfig(RidgeConfig):
    regularization: float = 0.1  # prior precision of each model's intercept: weak, so every model is tried
    prompt_regularization: float = 30.0  # prior precision of each model's prompt weights (the start, with
    empirical_bayes: bool = True  # ... then re-chosen from the ratings after 256, 512, 1024, ... of them)
    noise: float = 0.2  # variance of a rating around its model's prediction, for the empirical Bayes choice
    alpha: float = 0.5  # width of the confidence bonus
    bonus: str = "count"  # "count": alpha / sqrt(ratings + regularization); "posterior": alpha x the prediction's sd
    temperature: float = 0.0  # softmax temperature over the utilities (0: argmax)
    min_ratings: int = 10  # a model with fewer ratings is valued at the best rating, 1 (less its cost at the dial)
    elimination: float = 1.0  # z of the test that ends a clearly worse model's first tries early (0: never)
    dial_spread: float = 0.7  # sd of log(trade-off) around the dial over the 16 a request is routed at (0: none)
    exploration: float = 1.0  # c in the share min(0.2, c / sqrt(1 + ratings)) spread over the contenders (0: none)

    def validate(self) -> None:
        super().validate()
        if not self.intercept:
            raise ConfigError("intercept must be True: the intercept is the part shrunk least")
        check_integer(self.min_ratings, "min_ratings", 0, 10**6)
        if self.bonus not in ("posterior", "count"):
            raise ConfigError(f"bonus must be 'posterior' or 'count', got {self.bonus!r}")
        for name in ("prompt_regularization", "noise"):
            check_positive(getattr(self, name), name)
        for name in ("alpha", "temperature", "dial_spread", "elimination", "exploration"):
            check_non_negative(getattr(self, name), name)


@register
class ShrunkLinUCB(RidgePolicy):
    """argmax (or softmax) over mean + alpha sd - trade-off x cost, averaged over the dithered trade-offs, with a
    falling share spread over the contenders, of a ridge fit whose prompt weights are shrunk with precision
    `prompt_regularization` and whose intercept with `regularization`."""

    name = "shrunk-linucb"
    Config = ShrunkLinUCBConfig
    config: ShrunkLinUCBConfig

    def __init__(self, dim: int, arms: Sequence[str], config: ShrunkLinUCBConfig | None = None,
                 seed: int | None = None):
        self.prompt_precision = np.zeros(0)  # each model's current prompt-weight precision (empirical Bayes)
        self._next_refit = _FIRST_REFIT
        super().__init__(dim, arms, config, seed)

    def _precision_with(self, prompt_precision: float) -> np.ndarray:
        """D: a model's prior precision with this prompt-weight precision (prompt weights, then the intercept)."""
        return np.diag(np.append(np.full(self.dim, prompt_precision), self.config.regularization))

    def prior_precision(self, k: int) -> np.ndarray:
        """D_k: model k's prior precision at its current prompt-weight precision."""
        return self._precision_with(self.prompt_precision[k])

    def _ridge_excess(self, k: int) -> np.ndarray:
        """lambda I - D_k: what RidgePolicy's own bookkeeping (which assumes lambda I) must be corrected by."""
        return super().prior_precision(k) - self.prior_precision(k)

    def _maybe_refit(self) -> None:
        """Re-choose each model's prompt-weight precision from _GRID by empirical Bayes (its ratings' marginal
        likelihood, rating noise variance `noise`) once all models' ratings reach 256, 512, 1024, ..."""
        total = float(self.ratings.sum()) if len(self.arms) else 0.0
        if not self.config.empirical_bayes or total < self._next_refit:
            return
        while self._next_refit <= total:
            self._next_refit *= 2
        A = self.A
        for k in range(len(self.arms)):
            data = A[k] - self.prior_precision(k)  # sum z z^T
            evidence = []
            for lam in _GRID:  # log marginal likelihood of the ratings, less the terms lam does not change
                D = self._precision_with(lam)
                L = np.linalg.cholesky(data + D)
                v = solve_triangular(L, self.b[k], lower=True)
                evidence.append(0.5 * np.log(np.diag(D)).sum() - np.log(np.diag(L)).sum()
                                + v @ v / (2 * self.config.noise))
            best = _GRID[int(np.argmax(evidence))]
            if best != self.prompt_precision[k]:
                self.prompt_precision[k] = best
                A[k] = data + self._precision_with(best)
                self.A_inv[k] = np.linalg.inv(A[k])
                self.theta[k] = self.A_inv[k] @ self.b[k]

    # -- RidgePolicy with D_k in place of lambda I -----------------------------------------------------------
    def add_arm(self, arm: str) -> None:
        super().add_arm(arm)
        self.prompt_precision = np.append(self.prompt_precision, self.config.prompt_regularization)
        D = self._precision_with(self.config.prompt_regularization)
        self._A[-1], self.A_inv[-1] = D, np.diag(1.0 / np.diag(D))
        self._recount()

    def remove_arm(self, arm: str) -> None:
        k = self.index(arm)
        super().remove_arm(arm)
        self.prompt_precision = np.delete(self.prompt_precision, k)
        self._recount()

    def set_prior(self, arm: str, mean: np.ndarray, precision: np.ndarray) -> None:
        super().set_prior(arm, mean, precision)
        if self._delta is not None:
            self._base[arm]["A"] += self._ridge_excess(self.index(arm))
        self._recount()

    def share(self) -> None:
        fresh = self._delta is None
        super().share()
        if fresh:
            for arm, base in self._base.items():
                base["A"] += self._ridge_excess(self.index(arm))

    def install_totals(self, totals: Mapping[str, Mapping[str, np.ndarray]]) -> None:
        super().install_totals(totals)
        A = self.A - np.stack([self._ridge_excess(k) for k in range(len(self.arms))])
        self.A, self.A_inv = A, np.linalg.inv(A)
        self.theta = np.einsum("kij,kj->ki", self.A_inv, self.b)
        self._recount()
        self._maybe_refit()

    def state(self) -> dict[str, np.ndarray]:
        return {**super().state(), "prompt_precision": self.prompt_precision.copy()}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        precision = np.asarray(state.pop("prompt_precision"), dtype=float)
        if not (np.isfinite(precision).all() and (precision > 0).all()):
            raise StateFormatError(f"policy {self.name!r} state has prompt_precision {precision.tolist()}; "
                                   f"expected numbers > 0")
        self.prompt_precision = precision
        super()._set_state(state)
        self._recount()
        self._next_refit = _FIRST_REFIT  # the schedule goes on from the loaded ratings; their precisions are kept
        while self._next_refit <= self.ratings.sum():
            self._next_refit *= 2

    def _recount(self) -> None:
        """Ratings (weighted) per model, read off A: its intercept's precision less the prior's."""
        self.ratings = self.A[:, -1, -1] - self.config.regularization

    # -- learning ------------------------------------------------------------------------------------------
    def learn(self, outcomes: Sequence[Outcome]) -> None:
        """Add each outcome's rating to its model's statistics, counted `weight` times. As in RidgePolicy, one
        outcome of weight 1 is shared with other replicas; several, or weighted ones (a prior), are not."""
        shared = len(outcomes) == 1 and outcomes[0].weight == 1.0
        for outcome in outcomes:
            if not (outcome.weight > 0 and np.isfinite(outcome.weight)):
                raise ConfigError(f"outcome weight must be a finite number > 0, got {outcome.weight!r}")
            root = np.sqrt(outcome.weight)
            self._rank_one(outcome.model, root * self.features(outcome.vector), root * float(outcome.reward), shared)

    def _rank_one(self, arm: str, z: np.ndarray, reward: float, shared: bool) -> None:
        """RidgePolicy's rank-one update, counting the rating and re-choosing precisions when one is due."""
        self._add(arm, z, reward, shared)
        self.ratings[self.index(arm)] += z[-1] ** 2
        self._maybe_refit()

    # -- choosing ------------------------------------------------------------------------------------------
    def probabilities(self, x: np.ndarray, arms: Sequence[int], cost: np.ndarray,
                      cost_weight: float) -> tuple[np.ndarray, np.ndarray]:
        arms = np.asarray(arms, dtype=int)
        n = self.ratings[arms]
        if self.config.bonus == "count":
            mean, sd = (self.theta @ self.features(x))[arms], 1.0 / np.sqrt(n + self.config.regularization)
        else:
            mean, sd = self.predict(x, arms)
        cost = np.asarray(cost, float)
        spread = self.config.dial_spread
        trade_offs = cost_weight * np.exp(spread * _DITHER) if spread else np.array([cost_weight])
        price = np.outer(trade_offs, cost)  # one row per trade-off
        first_tries = (n < self.config.min_ratings - 1e-9) & ~self._clearly_worse(mean, n)  # valued at 1
        utility = np.where(first_tries, 1.0, mean + self.config.alpha * sd) - price
        if self.config.temperature == 0:
            best = utility >= utility.max(axis=1, keepdims=True) - 1e-12
            probs = (best / best.sum(axis=1, keepdims=True)).mean(axis=0)
        else:
            weights = np.exp((utility - utility.max(axis=1, keepdims=True)) / self.config.temperature)
            probs = (weights / weights.sum(axis=1, keepdims=True)).mean(axis=0)
        if self.config.exploration:
            contenders = (n >= _TESTED) & ~self._clearly_worse(mean - cost_weight * cost, n)
            if contenders.any():
                share = min(_MAX_EXPLORATION, self.config.exploration / np.sqrt(1.0 + self.ratings.sum()))
                probs = (1.0 - share) * probs + share * contenders / np.count_nonzero(contenders)
        return probs, mean

    def _clearly_worse(self, value: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Models rated `_TESTED` times or more whose value + z sd/sqrt(ratings) is below another's
        - z sd/sqrt(ratings) (z = `elimination`; none when it is 0)."""
        if not self.config.elimination:
            return np.zeros(len(n), dtype=bool)
        tested = n >= _TESTED
        width = self.config.elimination * _RATING_SD / np.sqrt(np.maximum(n, 1.0))
        return tested & (value + width < np.where(tested, value - width, -np.inf).max())

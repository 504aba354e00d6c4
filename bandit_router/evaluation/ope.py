"""Off-policy evaluation: what another policy would have scored, estimated from the router's decision log.

The log must come from a router created with `log=LogSettings(path, store_vectors=True)`, and from a policy that
gives every model a fair chance (epsilon-greedy, random): a deterministic policy such as linucb logs propensity 1
for its choice and 0 for every other model, so no other policy can be evaluated from it, and the default's and
thompson's propensities grow too skewed once they have learned (see the README). The effective sample size each
estimate reports says how many decisions it rests on. A decision a fallback model served counts as the policy's
first choice (the model that failed first, at its propensity): choosing that model led to the fallback's answer
and its rating.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataFormatError
from ..policies import Policy
from ..store import DecisionLog, SQLiteDecisionLog

__all__ = ["LoggedDecisions", "OPEEstimate", "logged_decisions", "target_probabilities", "reward_model", "estimate"]

logger = logging.getLogger(__name__)


@dataclass
class LoggedDecisions:
    """Rewarded decisions of a log as aligned arrays; column k of the (n, K) arrays is model `models[k]`."""

    models: list[str]
    vectors: np.ndarray  # (n, d) prompt vectors
    chosen: np.ndarray  # (n,) index of the model that answered
    propensity: np.ndarray  # (n,) probability the logging policy gave that model
    reward: np.ndarray  # (n,) the feedback score
    cost_weight: np.ndarray  # (n,) the dial of each request
    cost: np.ndarray  # (n, K) predicted cost / tau, as the policy saw it; NaN where the model was not eligible
    fallbacks: int = 0  # decisions a fallback model served, read as the policy's first choice

    def __len__(self) -> int:
        return len(self.chosen)


@dataclass(frozen=True)
class OPEEstimate:
    """Estimated mean reward of the target policy; `ess` is the effective sample size of the IPS weights."""

    ips: float
    snips: float
    dr: float
    dm: float
    n: int
    ess: float


def logged_decisions(log: DecisionLog | str | Path) -> LoggedDecisions:
    """Read every decision that has a stored vector and a feedback score. A decision a fallback model served is
    read as the policy's first choice, the model that failed first, at the probability the policy gave it (the log
    keeps the served model's, which is not the chance that model served); `fallbacks` counts them."""
    log = SQLiteDecisionLog(log) if isinstance(log, (str, Path)) else log
    rows = [r for r in log.rows() if r["vector"] is not None and r["score"] is not None]
    if not rows:
        raise DataFormatError(f"{log.path} holds no rewarded decision with a stored vector "
                              "(create the router with store_vectors=True and give feedback)")
    chosen = [r["failed"][0] if r["failed"] else r["model"] for r in rows]  # what the policy chose
    models = list(dict.fromkeys(m for r in rows for m in r["predictions"]["probabilities"]))
    column = {m: k for k, m in enumerate(models)}
    cost = np.full((len(rows), len(models)), np.nan)
    for i, r in enumerate(rows):
        predicted = r["predictions"]["cost"]
        tau = max(predicted.values()) or 1.0
        for m, c in predicted.items():
            cost[i, column[m]] = c / tau
    return LoggedDecisions(models, np.stack([r["vector"] for r in rows]), np.array([column[m] for m in chosen]),
                           np.array([r["predictions"]["probabilities"][m] for r, m in zip(rows, chosen)]),
                           np.array([r["score"] for r in rows]), np.array([r["cost_weight"] for r in rows]), cost,
                           sum(bool(r["failed"]) for r in rows))


def target_probabilities(policy: Policy, logged: LoggedDecisions, cost_weight: float | None = None) -> np.ndarray:
    """(n, K) probabilities the (frozen) `policy` gives each eligible model on each logged request, at the
    logged dial or at `cost_weight`."""
    probs = np.zeros((len(logged), len(logged.models)))
    for i in range(len(logged)):
        eligible = np.flatnonzero(~np.isnan(logged.cost[i]))
        arms = [policy.index(logged.models[k]) for k in eligible]
        dial = logged.cost_weight[i] if cost_weight is None else cost_weight
        probs[i, eligible] = policy.probabilities(logged.vectors[i], arms, logged.cost[i, eligible], dial)[0]
    return probs


def reward_model(logged: LoggedDecisions, regularization: float = 1.0) -> np.ndarray:
    """(n, K) predicted rewards for the doubly robust estimate: a ridge regression per model on the logged
    (vector, reward) pairs of that model, cross-fitted (each half of the log is predicted by the other half)."""
    Z = np.hstack([logged.vectors.astype(np.float64), np.ones((len(logged), 1))])
    fold = np.arange(len(logged)) % 2
    q = np.zeros((len(logged), len(logged.models)))
    for f in (0, 1):
        for k in range(len(logged.models)):
            train = (fold != f) & (logged.chosen == k)
            gram = Z[train].T @ Z[train] + regularization * np.eye(Z.shape[1])
            q[fold == f, k] = Z[fold == f] @ np.linalg.solve(gram, Z[train].T @ logged.reward[train])
    return q


def estimate(logged: LoggedDecisions, target: np.ndarray, q: np.ndarray | None = None) -> OPEEstimate:
    """IPS, self-normalised IPS, doubly robust and direct-method estimates of the mean reward of a policy
    choosing with probabilities `target` (n, K); `q` are predicted rewards (default: `reward_model`).

    ConfigError if `target` is not one distribution over the log's models per logged decision; DataFormatError if
    a logged propensity is not > 0 or if the target gives probability 0 to every logged choice (no decision to
    estimate from). With the default `q`, DM and DR are NaN (and a warning names the models) when the target gives
    probability to a model the log never rewarded: nothing predicts its reward."""
    target = _checked_target(logged, target)
    rows = np.arange(len(logged))
    if bad := np.flatnonzero(~(logged.propensity > 0)).tolist():
        raise DataFormatError(f"logged propensity must be > 0, got {logged.propensity[bad[:5]].tolist()} at rows "
                              f"{bad[:5]}{' ...' if len(bad) > 5 else ''} ({len(bad)} rows): the logging policy "
                              "could not have chosen those models")
    w = target[rows, logged.chosen] / logged.propensity
    if not w.sum() > 0:
        raise DataFormatError("the target gives probability 0 to every logged choice: the log holds no decision "
                              "the target policy could make, so there is nothing to estimate from")
    if q is None:
        q = reward_model(logged)
        if unseen := [m for k, m in enumerate(logged.models) if target[:, k].any() and not (logged.chosen == k).any()]:
            logger.warning("DM and DR are NaN: the target chooses %s, which the log never rewarded", unseen)
            q = np.full_like(q, np.nan)
    direct = (target * q).sum(axis=1)
    return OPEEstimate(ips=float(np.mean(w * logged.reward)), snips=float(np.sum(w * logged.reward) / np.sum(w)),
                       dr=float(np.mean(direct + w * (logged.reward - q[rows, logged.chosen]))),
                       dm=float(direct.mean()), n=len(logged), ess=float(w.sum() ** 2 / (w ** 2).sum()))


def _checked_target(logged: LoggedDecisions, target: np.ndarray) -> np.ndarray:
    """`target` as a float array, if it is an (n, K) array of finite probabilities >= 0, each row summing to 1."""
    target = np.asarray(target, dtype=np.float64)
    expected = (len(logged), len(logged.models))
    if target.shape != expected:
        raise ConfigError(f"target must have shape {expected} (logged decisions, models {logged.models}), "
                          f"got {target.shape}")
    valid = np.isfinite(target) & (target >= 0)
    if not valid.all():
        row = int(np.flatnonzero(~valid.all(axis=1))[0])
        raise ConfigError(f"target must hold finite probabilities >= 0, got {target[row].tolist()} at row {row}")
    sums = target.sum(axis=1)
    if bad := np.flatnonzero(np.abs(sums - 1) > 1e-6).tolist():
        raise ConfigError(f"target rows must sum to 1, row {bad[0]} sums to {sums[bad[0]]:g} "
                          f"({len(bad)} rows do not)")
    return target

"""Off-policy evaluation: what another policy would have scored, estimated from the router's decision log.

The log must come from a router created with `log=LogSettings(path, store_vectors=True)`, and from a policy that
gives every model a fair chance (epsilon-greedy, random): a deterministic policy such as linucb logs propensity 1
for its choice and 0 for every other model, so no other policy can be evaluated from it, and the default's and
thompson's propensities grow too skewed once they have learned (see the README). The effective sample size each
estimate reports says how many decisions it rests on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataFormatError
from ..policies import Policy
from ..store import DecisionLog, SQLiteDecisionLog

__all__ = ["LoggedDecisions", "OPEEstimate", "logged_decisions", "target_probabilities", "reward_model", "estimate"]


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
    """Read every decision that has a stored vector and a feedback score."""
    log = SQLiteDecisionLog(log) if isinstance(log, (str, Path)) else log
    rows = [r for r in log.rows() if r["vector"] is not None and r["score"] is not None]
    if not rows:
        raise DataFormatError(f"{log.path} holds no rewarded decision with a stored vector "
                              "(create the router with store_vectors=True and give feedback)")
    models = list(dict.fromkeys(m for r in rows for m in r["predictions"]["probabilities"]))
    column = {m: k for k, m in enumerate(models)}
    cost = np.full((len(rows), len(models)), np.nan)
    for i, r in enumerate(rows):
        predicted = r["predictions"]["cost"]
        tau = max(predicted.values()) or 1.0
        for m, c in predicted.items():
            cost[i, column[m]] = c / tau
    return LoggedDecisions(models, np.stack([r["vector"] for r in rows]), np.array([column[r["model"]] for r in rows]),
                           np.array([r["propensity"] for r in rows]), np.array([r["score"] for r in rows]),
                           np.array([r["cost_weight"] for r in rows]), cost)


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
    choosing with probabilities `target` (n, K); `q` are predicted rewards (default: `reward_model`)."""
    rows = np.arange(len(logged))
    w = target[rows, logged.chosen] / logged.propensity
    q = reward_model(logged) if q is None else q
    direct = (target * q).sum(axis=1)
    return OPEEstimate(ips=float(np.mean(w * logged.reward)), snips=float(np.sum(w * logged.reward) / np.sum(w)),
                       dr=float(np.mean(direct + w * (logged.reward - q[rows, logged.chosen]))),
                       dm=float(direct.mean()), n=len(logged), ess=float(w.sum() ** 2 / (w ** 2).sum()))

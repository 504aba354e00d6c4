"""Replay a routing table through the real Router: the policy sees only the chosen model's score."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import BudgetExceededError, ConfigError
from ..priors import table_prior
from ..router import Router
from .table import RoutingTable

__all__ = ["ReplayRun", "replay", "warm_rows"]


@dataclass
class ReplayRun:
    """One pass over a shuffled table: which model was chosen for each prompt and what it scored and cost."""

    policy: str
    cost_weight: float
    seed: int
    order: np.ndarray  # row indices in the order they were routed
    chosen: np.ndarray  # model index chosen for each routed row
    propensity: np.ndarray
    score: np.ndarray  # 0 for a prompt the router's budget refused (chosen -1)
    cost: np.ndarray
    spend: float | None = None  # routed at a spend target of this share of the best single model's mean cost
    # (cost_weight is then the dial the target ended at); None: routed at the fixed dial cost_weight

    @property
    def mean_score(self) -> float:
        return float(self.score.mean())

    @property
    def mean_cost(self) -> float:
        return float(self.cost.mean())


def warm_rows(warm_start: float, n: int, field: str = "warm_start") -> int:
    """How many of a stream's `n` prompts a warm start takes: an int is a number of prompts (0 to n - 1), a float
    a share of them in [0, 1) (as scikit-learn's test_size); ConfigError naming `field` otherwise."""
    if isinstance(warm_start, bool) or not isinstance(warm_start, (numbers.Integral, float)):
        raise ConfigError(f"{field} must be a number of prompts or a share of them, got {warm_start!r}")
    if isinstance(warm_start, numbers.Integral):
        if not 0 <= warm_start < n:
            raise ConfigError(f"{field} must be a number of prompts in [0, {n - 1}] (the table has {n}), "
                              f"got {warm_start}")
        return int(warm_start)
    if not 0.0 <= warm_start < 1.0:
        raise ConfigError(f"{field} must be a share in [0, 1) of the prompts, or a whole number of them, "
                          f"got {warm_start!r}")
    return int(round(warm_start * n))


def replay(table: RoutingTable, router: Router, cost_weight: float | None, seed: int, policy_label: str | None = None,
           warm_start: float = 0.0, feedback: str = "bandit", progress: Any = None) -> ReplayRun:
    """Stream the table's prompts in a seeded random order through `router` at dial `cost_weight` (None: at the
    router's own, e.g. a SpendTarget's moving dial; the run then records the dial it ended at).

    `router` must know the table's models and encode its prompts (see `lookup_encoder`); a router that declares
    tasks is given each prompt's task from the table (None for a task it does not declare). With `warm_start`
    > 0 (a number of prompts, or a share of them: `warm_rows`), the first shuffled rows teach the router every
    model's score and cost (full information: `table_prior`) and the rest are routed. `feedback="bandit"` rewards
    only the chosen model; `"full"` teaches every model. `progress` is an optional callable receiving the number of
    rows just processed.
    """
    if feedback not in ("bandit", "full"):
        raise ConfigError(f"feedback must be 'bandit' or 'full', got {feedback!r}")
    n_warm = warm_rows(warm_start, len(table))
    rows = np.random.default_rng(seed).permutation(len(table))
    tasks = [t if t in router.tasks else None for t in table.tasks]
    if n_warm:
        warm = rows[:n_warm]
        table_prior(router, [table.prompts[i] for i in warm], table.scores[warm], table.models,
                    tasks=[tasks[i] for i in warm], costs=table.costs[warm])
    order = rows[n_warm:]
    column = {m: k for k, m in enumerate(table.models)}
    chosen = np.empty(len(order), dtype=int)
    propensity = np.empty(len(order))
    for step, i in enumerate(order):
        try:
            decision = router.route(table.prompts[i], cost_weight=cost_weight, task=tasks[i])
        except BudgetExceededError:  # the router's budget can pay for no model: the prompt goes unanswered
            chosen[step], propensity[step] = -1, np.nan
            if progress is not None:
                progress(1)
            continue
        k = column[decision.model]
        chosen[step], propensity[step] = k, decision.propensity
        router.settle(decision.route_id, table.costs[i, k])  # a budget is charged the table's cost
        router.feedback(decision.route_id, table.scores[i, k])
        if feedback == "full":
            for other, model in enumerate(table.models):
                if other != k:
                    router.observe(table.prompts[i], model, table.scores[i, other], task=tasks[i])
        if progress is not None:
            progress(1)
    answered = chosen >= 0
    dial = router.cost_weight if cost_weight is None else cost_weight
    return ReplayRun(policy_label or router.policy.name, dial, seed, order, chosen, propensity,
                     np.where(answered, table.scores[order, chosen], 0.0),
                     np.where(answered, table.costs[order, chosen], 0.0))

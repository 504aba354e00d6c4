"""The outcome ledger: decisions waiting for feedback, their expiry, feedback tokens and per-source quotas."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from .decision import Decision
from .errors import DuplicateFeedbackError, UnknownRouteError
from .outcome import Outcome, normalised_costs
from .settings import FeedbackSettings
from .store import StateStore
from .tokens import check_route_id

__all__ = ["OutcomeLedger", "Pending"]

_WHY = {"rewarded": (DuplicateFeedbackError, "was already rewarded"),
        "expired": (UnknownRouteError, "expired before feedback arrived (pending_ttl), or was pushed out by newer "
                                       "decisions (max_pending)"),
        "failed": (UnknownRouteError, "has no answer to rate: its call failed"),
        "cancelled": (UnknownRouteError, "has no answer to rate: its call was cancelled before the answer"),
        "unread": (UnknownRouteError, "has no answer to rate: its stream was closed before it was read"),
        "dropped": (UnknownRouteError, "expired: its model was removed from the router")}


@dataclass(slots=True)
class Pending:
    """A decision waiting for feedback: the vector the policy saw, the model that serves it, and the routing
    context an outcome needs (the eligible models' normalised costs and probabilities), kept in place of the
    Decision, whose three dicts took about a third of a waiting decision's memory."""

    vector: np.ndarray
    model: str
    created_at: float
    cost_weight: float
    names: tuple[str, ...]
    costs: np.ndarray
    probabilities: np.ndarray

    @classmethod
    def of(cls, decision: Decision, vector: np.ndarray) -> "Pending":
        return cls.made(vector, decision.model, decision.created_at, decision.cost_weight, decision.predicted_cost,
                        decision.probabilities)

    @classmethod
    def logged(cls, row: Mapping[str, Any]) -> "Pending":
        """What `of` built for a decision, rebuilt from its decision-log row (see SQLiteDecisionLog)."""
        predictions = row["predictions"]
        return cls.made(np.array(row["vector"]), row["model"], float(row["created_at"]), float(row["cost_weight"]),
                        predictions["cost"], predictions["probabilities"])

    @classmethod
    def made(cls, vector: np.ndarray, model: str, created_at: float, cost_weight: float,
             predicted_cost: Mapping[str, float], probabilities: Mapping[str, float]) -> "Pending":
        names = tuple(predicted_cost)
        return cls(vector, model, created_at, cost_weight, names, normalised_costs(predicted_cost.values()),
                   np.array([probabilities[name] for name in names]))

    def outcome(self, reward: float) -> Outcome:
        """The outcome of this decision's model scoring `reward`, with the routing context it was chosen in."""
        k = self.names.index(self.model)
        return Outcome(self.vector, self.model, reward, float(self.costs[k]), self.cost_weight,
                       float(self.probabilities[k]))


class OutcomeLedger:
    """Decisions waiting for feedback, oldest first; turns feedback (or expiry) into one Outcome for `learn`.

    Every method takes `lock` (the router's), so a ledger is safe to share between threads. Budget holds are not
    its business: a decision pushed out by max_pending may still have its call in flight (see BudgetGate.expire).
    """

    def __init__(self, settings: FeedbackSettings, learn: Callable[[Sequence[Outcome]], None],
                 lock: threading.RLock, store: StateStore | None = None) -> None:
        self.settings = settings
        self.tokens = settings.tokens()
        self.quota = settings.quota(store)  # with a state store, the per-source counts are shared across replicas
        self.learn = learn
        self.lock = lock
        self.waiting: OrderedDict[str, Pending] = OrderedDict()
        self.closed: OrderedDict[str, str] = OrderedDict()  # route_id -> why it stopped waiting

    def open(self, decision: Decision, vector: np.ndarray) -> Decision:
        """Start waiting for feedback on `decision` (signed with a feedback token when the ledger has a secret);
        beyond max_pending the oldest waiting decision expires."""
        if self.tokens is not None:
            decision = replace(decision, feedback_token=self.tokens.issue(decision.route_id))
        with self.lock:
            self.waiting[decision.route_id] = Pending.of(decision, vector)
            while len(self.waiting) > self.settings.max_pending:
                self.close(next(iter(self.waiting)), "expired")
        return decision

    def reward(self, route_id: str, score: float, token: str | None, source: str | None) -> None:
        """Learn `score` for the decision `route_id`; errors say why feedback cannot apply."""
        check_route_id(route_id)
        if self.tokens is not None:
            self.tokens.verify(route_id, token)
        with self.lock:
            self.expire()
            pending = self.waiting.get(route_id)
            if pending is None:
                error, why = _WHY.get(self.closed.get(route_id, ""), (UnknownRouteError, ""))
                raise error(f"route_id {route_id!r} {why}" if why else
                            f"unknown route_id {route_id!r}: not made by this router, or made before it was restarted "
                            f"or loaded (decisions wait for feedback in memory; Router.restore_pending re-opens "
                            f"them from a decision log with vectors), or forgotten "
                            f"beyond max_pending")
            if self.quota is not None:
                source = self.quota.check(source)
            self.learn([pending.outcome(score)])
            self.close(route_id, "rewarded")
            if self.quota is not None:
                self.quota.count(source)  # type: ignore[arg-type]

    def serve(self, route_id: str, model: str) -> None:
        """After a fallback, point the waiting feedback at the model that answered."""
        with self.lock:
            if route_id in self.waiting:
                self.waiting[route_id].model = model

    def fail(self, route_id: str, reason: str = "failed") -> None:
        """The decision's call failed (or `reason`: "cancelled", "unread"): stop waiting (nothing is learned)."""
        with self.lock:
            if route_id in self.waiting:
                self.close(route_id, reason)

    def drop_model(self, name: str) -> None:
        """Stop waiting on every decision served by `name` (removed from the router; nothing is learned)."""
        with self.lock:
            for route_id in [r for r, p in self.waiting.items() if p.model == name]:
                self.close(route_id, "dropped")

    def restore(self, entries: Iterable[tuple[str, Pending]]) -> int:
        """Wait again for feedback on `entries` (route_id, Pending), e.g. rebuilt from the decision log after a
        restart; how many now wait. Skipped: those older than pending_ttl, and those already waiting or closed
        here. Only the room max_pending leaves is filled, newest first: no waiting decision is pushed out."""
        with self.lock:
            self.expire()
            deadline = time.time() - self.settings.pending_ttl
            fresh = sorted(((route_id, pending) for route_id, pending in entries if pending.created_at > deadline
                            and route_id not in self.waiting and route_id not in self.closed),
                           key=lambda entry: entry[1].created_at)
            room = self.settings.max_pending - len(self.waiting)
            fresh = fresh[-room:] if room > 0 else []
            merged = sorted([*self.waiting.items(), *fresh], key=lambda entry: entry[1].created_at)  # oldest first
            self.waiting.clear()
            self.waiting.update(merged)
            return len(fresh)

    def is_waiting(self, route_id: str) -> bool:
        with self.lock:
            self.expire()
            return route_id in self.waiting

    def close(self, route_id: str, reason: str) -> None:
        """Stop waiting on `route_id` for `reason`; with an expired_reward, an expired decision's model learns
        that reward."""
        with self.lock:
            pending = self.waiting.pop(route_id)
            if reason == "expired" and self.settings.expired_reward is not None:
                self.learn([pending.outcome(self.settings.expired_reward)])
            self.closed[route_id] = reason
            while len(self.closed) > self.settings.max_pending:
                self.closed.popitem(last=False)

    def expire(self) -> None:
        """Close every decision older than pending_ttl."""
        deadline = time.time() - self.settings.pending_ttl
        with self.lock:
            while self.waiting:
                route_id, oldest = next(iter(self.waiting.items()))
                if oldest.created_at > deadline:
                    break
                self.close(route_id, "expired")

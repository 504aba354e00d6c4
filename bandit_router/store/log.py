"""The decision log interface: where the router records decisions, calls, failures and feedback."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Iterator

import numpy as np

from ..decision import Decision

__all__ = ["DecisionLog"]


class DecisionLog(ABC):
    """Append-mostly record of decisions and their outcomes (see SQLiteDecisionLog for the columns of a row)."""

    @abstractmethod
    def record_decision(self, decision: Decision, prompt: str | None = None, vector: np.ndarray | None = None) -> None:
        """Record a decision; recording one with the same route_id again (a fallback) updates its model,
        propensity and failed models and keeps the rest."""

    @abstractmethod
    def record_call(self, route_id: str, cost: float, prompt_tokens: int | None = None,
                    completion_tokens: int | None = None) -> None:
        """Record that the decision's call was served, at `cost` (the models' cost unit: USD for priced cards),
        with its token counts if known."""

    def record_cut(self, route_id: str, charged: float | None) -> None:
        """Record that the decision's stream was stopped part-way: served, its usage unknown, `charged` its hold's
        worst case (None without a budget). By default as `record_call`; a log that can should mark it as cut."""
        self.record_call(route_id, charged)  # type: ignore[arg-type]

    @abstractmethod
    def record_failure(self, route_id: str, error: BaseException) -> None:
        """Record a provider failure (its error type only: messages may quote the prompt)."""

    @abstractmethod
    def record_feedback(self, route_id: str, score: float) -> None:
        """Record the feedback score of a decision."""

    @abstractmethod
    def rows(self) -> Iterator[dict[str, Any]]:
        """Every logged decision as a dict, oldest first (vectors as float32 arrays); a log that cannot list its
        rows raises NotImplementedError."""

    def served_unrated(self, since: float) -> Iterator[dict[str, Any]]:
        """The decisions made after `since` (a Unix time) whose call was served and that have no score yet, oldest
        first, as `rows` gives them."""
        return (row for row in self.rows()
                if row["status"] == "served" and row["score"] is None and row["created_at"] > since)

    def close(self) -> None:
        """Release the log's resources."""

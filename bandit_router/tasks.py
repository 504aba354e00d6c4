"""Task hints: the kind of request a prompt is (an agent's step, a RAG stage, an app's endpoint), as the application
knows it. The router declares its tasks once; each request may name one, and the policy sees the prompt vector
(scaled by `text_weight`) with a one-hot of the task appended, so it learns each task's best models from a few
ratings per task instead of inferring the task from the text."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .errors import ConfigError

__all__ = ["TaskHints", "TEXT_WEIGHT"]

TEXT_WEIGHT = 0.3  # measured on the shared sets with their task labels (docs/PEERS.md, "Task hints")


class TaskHints:
    """Builds the policy's context vector [text_weight * prompt vector, one-hot(task)] (zeros for no task)."""

    def __init__(self, tasks: Sequence[str], text_weight: float = TEXT_WEIGHT) -> None:
        if isinstance(tasks, str) or not all(isinstance(t, str) and t for t in tasks):
            raise ConfigError(f"tasks must be a list of non-empty task names, got {tasks!r}")
        if len(set(tasks)) != len(tasks):
            raise ConfigError(f"tasks must be distinct, got {list(tasks)}")
        if isinstance(text_weight, bool) or not isinstance(text_weight, (int, float)) or not (
                math.isfinite(text_weight) and 0 < text_weight <= 10):
            raise ConfigError(f"text_weight must be a number in (0, 10], got {text_weight!r}")
        self.tasks = tuple(tasks)
        self.text_weight = float(text_weight)
        self._index = {t: i for i, t in enumerate(self.tasks)}

    def check(self, task: Any) -> None:
        """ConfigError unless `task` is None or one of the declared tasks."""
        if task is not None and task not in self._index:
            raise ConfigError(f"task must be one of the router's tasks {list(self.tasks)} or None, got {task!r}")

    def one_hot(self, tasks: Sequence[str | None]) -> np.ndarray:
        """One-hots (n, len(self.tasks)) of `tasks`, a zero row for None; ConfigError for an undeclared task."""
        hints = np.zeros((len(tasks), len(self.tasks)))
        for row, task in enumerate(tasks):
            self.check(task)
            if task is not None:
                hints[row, self._index[task]] = 1.0
        return hints

    def context(self, vectors: np.ndarray, one_hot: np.ndarray) -> np.ndarray:
        """Context vectors (n, dim + len(tasks)) for prompt vectors (n, dim) and their tasks' `one_hot`."""
        return np.hstack([self.text_weight * np.asarray(vectors, dtype=float), one_hot])

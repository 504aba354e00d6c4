"""The vectors a policy sees: the encoder's prompt vector, with the task's one-hot when the router declares tasks."""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .checks import check_model_names, check_prompt
from .encoders import Encoder, as_encoder
from .errors import ConfigError, NoEligibleModelError
from .models import Model
from .tasks import TaskHints

__all__ = ["PromptContext", "eligible"]


class PromptContext:
    """Encodes prompts (and their tasks) into the policy's vectors; `tasks` is a list of task names or TaskHints."""

    def __init__(self, encoder: Encoder | Callable | None, tasks: Sequence[str] | TaskHints = ()) -> None:
        self.encoder = as_encoder(encoder)
        self.hints = tasks if isinstance(tasks, TaskHints) else TaskHints(tasks) if tasks else None

    @property
    def tasks(self) -> tuple[str, ...]:
        return () if self.hints is None else self.hints.tasks

    @property
    def text_weight(self) -> float | None:
        return None if self.hints is None else self.hints.text_weight

    @property
    def dim(self) -> int:
        """Length of the vectors the policy sees: the encoder's, plus one per declared task."""
        return self.encoder.dim + len(self.tasks)

    @property
    def layout(self) -> str:
        """How vectors are built (encoder, dimension, tasks, text weight), as JSON: replicas sharing a
        state_store must agree on it."""
        return json.dumps({"encoder": self.encoder.name, "dim": self.dim, "tasks": list(self.tasks),
                           "text_weight": self.text_weight})

    def check_task(self, task: Any) -> None:
        """ConfigError unless `task` is None or one of the declared tasks."""
        if self.hints is not None:
            self.hints.check(task)
        elif task is not None:
            raise ConfigError(f"task {task!r} was given, but the router declares no tasks: pass tasks=[...] to Router "
                              "(for bandit-router serve: tasks = [...] in its config)")

    def _one_hot(self, tasks: Sequence[Any]) -> np.ndarray | None:
        """The tasks' one-hots (None when no tasks are declared), checked before any prompt is encoded."""
        if self.hints is not None:
            return self.hints.one_hot(tasks)
        for task in tasks:
            self.check_task(task)
        return None

    def _with_task(self, vector: np.ndarray, one_hot: np.ndarray | None) -> np.ndarray:
        return vector if one_hot is None else self.hints.context(vector[None], one_hot)[0]  # type: ignore[union-attr]

    def vector(self, query: str, task: str | None) -> np.ndarray:
        one_hot = self._one_hot([task])
        return self._with_task(self.encoder(query), one_hot)

    async def avector(self, query: str, task: str | None) -> np.ndarray:
        """`vector`, encoding off the event loop (the encoder's batching `aencode`, in its worker thread)."""
        one_hot = self._one_hot([task])
        return self._with_task(np.asarray(await self.encoder.aencode(query)), one_hot)

    async def prefetch(self, prompt: Any, max_chars: int) -> None:
        """Encode `prompt` (a string or chat messages) off the event loop into the encoder's cache, so that a
        synchronous route of the same prompt that follows (e.g. `Router.astream`) does not block the loop."""
        await self.encoder.aencode(check_prompt(prompt, max_chars)[0])

    def vectors(self, prompts: Sequence[str], tasks: Sequence[str | None] | None = None) -> np.ndarray:
        """The vectors for prompt texts `prompts` and their tasks (None: none), shape (n, dim)."""
        if tasks is not None and len(tasks) != len(prompts):
            raise ConfigError(f"tasks must give one task (or None) per prompt: {len(tasks)} for {len(prompts)}")
        one_hot = self._one_hot([None] * len(prompts) if tasks is None else list(tasks))
        vectors = self.encoder.encode(list(prompts))
        return vectors if one_hot is None else self.hints.context(vectors, one_hot)  # type: ignore[union-attr]


def eligible(models: Mapping[str, Model], prompt_tokens: int, allowed: Sequence[str] | None = None,
             tools: bool = False, max_tokens: int | None = None, images: bool = False) -> list[str]:
    """Models allowed for a request: in the `allowed` subset, image-capable if it holds images, tool-capable if
    tools are bound, long enough; NoEligibleModelError saying which requirement no allowed model meets."""
    names = list(models) if allowed is None else [m for m in models if m in set(check_model_names(allowed, models))]
    where = f"allowed={names if allowed is not None else 'all'}"
    if images:
        names = [m for m in names if models[m].supports_vision]
        if not names:
            raise NoEligibleModelError(f"the request holds an image and no allowed model accepts images ({where}); "
                                       "give a card supports_vision=True")
    if tools:
        names = [m for m in names if models[m].supports_tools]
        if not names:
            raise NoEligibleModelError(f"tools are bound and no allowed model supports tools ({where}); give a "
                                       "card supports_tools=True")
    needed = prompt_tokens + (max_tokens or 0)
    fits = [m for m in names if models[m].context_window is None or models[m].context_window >= needed]
    if not fits:
        windows = {m: models[m].context_window for m in names}
        raise NoEligibleModelError(f"no allowed model's context window holds the request: {prompt_tokens} prompt "
                                   f"tokens + max_tokens={max_tokens} ({where}; context windows: {windows})")
    names = [m for m in fits if not max_tokens or models[m].max_output_tokens is None
             or models[m].max_output_tokens >= max_tokens]  # providers refuse a larger max_tokens
    if not names:
        limits = {m: models[m].max_output_tokens for m in fits}
        raise NoEligibleModelError(f"max_tokens={max_tokens} is more than every allowed model may write ({where}; "
                                   f"max_output_tokens: {limits})")
    return names

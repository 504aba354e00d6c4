"""Routed streams: LiteLLM chunks from the chosen model, with fallback before the first chunk."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, AsyncIterator, Iterable, Iterator, Mapping, Protocol

from .decision import Decision, Messages, usage_of
from .models import quiet_litellm

__all__ = ["Attempts", "RoutedStream", "AsyncRoutedStream"]


class Attempts(Protocol):
    """What a stream needs from the caller that made it (see `bandit_router.calls.ModelCaller`)."""

    def call_kwargs(self, model: str, kwargs: Mapping[str, Any]) -> dict[str, Any]: ...
    def hidden(self, messages: Messages) -> AbstractContextManager[None]: ...
    def served(self, decision: Decision, model: str, failed: list[str]) -> Decision: ...
    def failed(self, decision: Decision, model: str, error: BaseException,
               failures: dict[str, BaseException]) -> None: ...
    def all_failed(self, decision: Decision, failures: dict[str, BaseException]) -> Exception: ...
    def ended(self, decision: Decision, model: str, usage: Mapping[str, int], response: Any = None) -> float: ...
    def cut(self, decision: Decision) -> None: ...
    def abandoned(self, decision: Decision) -> None: ...
    def broke(self, decision: Decision, model: str, error: BaseException) -> None: ...


class _StreamBase:
    """A routed stream: iterate it for LiteLLM chunks; `decision` names the model serving it, and `cost` and
    `usage` are set when the stream ends (usage is requested from the provider with include_usage)."""

    def __init__(self, caller: Attempts, messages: list[dict[str, Any]], decision: Decision, order: Iterable[str],
                 kwargs: Mapping[str, Any]) -> None:
        self.caller = caller
        self.decision = decision
        self.cost: float | None = None
        self.usage: dict[str, int] = {}
        self._messages = messages
        self._order = order
        self._kwargs = {**kwargs, "stream": True,
                        "stream_options": {"include_usage": True, **kwargs.get("stream_options", {})}}
        self._failures: dict[str, BaseException] = {}

    def _call_kwargs(self, model: str) -> dict[str, Any]:
        return {"messages": self._messages, **self.caller.call_kwargs(model, self._kwargs)}

    def _started(self, model: str) -> None:
        self.decision = self.caller.served(self.decision, model, list(self._failures))

    def _observe(self, chunk: Any) -> None:
        if getattr(chunk, "usage", None):
            self.usage = usage_of(chunk)

    def _cut(self, model: str, error: BaseException) -> None:
        """The stream stopped before its end: the provider bills what it generated but its usage never arrives, so
        the budget is charged the call's worst-case hold. If it broke (not closed by its consumer), that is a
        failure of the model."""
        self.caller.cut(self.decision)
        if isinstance(error, Exception):  # GeneratorExit, cancellation: the consumer stopped reading
            self.caller.broke(self.decision, model, error)

    def _ended(self, model: str) -> None:
        usage = self.usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        self.cost = self.caller.ended(self.decision, model, usage)


class RoutedStream(_StreamBase):
    def __iter__(self) -> Iterator[Any]:
        litellm = quiet_litellm()

        for model in self._order:
            try:
                with self.caller.hidden(self._messages):
                    chunks = iter(litellm.completion(**self._call_kwargs(model)))
                    first = next(chunks, None)
            except Exception as error:
                with self.caller.hidden(self._messages):  # the prompt stays out of the failure's note and log
                    self.caller.failed(self.decision, model, error, self._failures)
                continue
            except BaseException:  # cancelled or closed before its first chunk
                self.caller.abandoned(self.decision)
                raise
            self._started(model)
            try:
                if first is not None:
                    self._observe(first)
                    yield first
                for chunk in chunks:
                    self._observe(chunk)
                    yield chunk
            except BaseException as error:
                self._cut(model, error)
                raise
            self._ended(model)
            return
        with self.caller.hidden(self._messages):
            raise self.caller.all_failed(self.decision, self._failures)


class AsyncRoutedStream(_StreamBase):
    async def __aiter__(self) -> AsyncIterator[Any]:
        litellm = quiet_litellm()

        for model in self._order:
            try:
                with self.caller.hidden(self._messages):
                    chunks = (await litellm.acompletion(**self._call_kwargs(model))).__aiter__()
                    first = await anext(chunks, None)
            except Exception as error:
                with self.caller.hidden(self._messages):  # the prompt stays out of the failure's note and log
                    self.caller.failed(self.decision, model, error, self._failures)
                continue
            except BaseException:  # cancelled or closed before its first chunk
                self.caller.abandoned(self.decision)
                raise
            self._started(model)
            try:
                if first is not None:
                    self._observe(first)
                    yield first
                async for chunk in chunks:
                    self._observe(chunk)
                    yield chunk
            except BaseException as error:
                self._cut(model, error)
                raise
            self._ended(model)
            return
        with self.caller.hidden(self._messages):
            raise self.caller.all_failed(self.decision, self._failures)

"""Routed streams: LiteLLM chunks from the chosen model, with fallback before the first chunk."""

from __future__ import annotations

import weakref
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, AsyncGenerator, Generator, Iterable, Mapping, Protocol

from .decision import Decision, Messages, usage_of
from .models import Model, quiet_litellm

__all__ = ["Attempts", "RoutedStream", "AsyncRoutedStream"]


class Attempts(Protocol):
    """What a stream needs from the caller that made it (see `bandit_router.calls.ModelCaller`)."""

    def card(self, model: str) -> Model: ...
    def call_kwargs(self, card: Model, kwargs: Mapping[str, Any]) -> dict[str, Any]: ...
    def hidden(self, messages: Messages) -> AbstractContextManager[None]: ...
    def served(self, decision: Decision, model: str, failed: list[str]) -> Decision: ...
    def failed(self, decision: Decision, model: str, error: BaseException,
               failures: dict[str, BaseException]) -> None: ...
    def all_failed(self, decision: Decision, failures: dict[str, BaseException]) -> Exception: ...
    def ended(self, decision: Decision, card: Model, usage: Mapping[str, int], response: Any = None) -> float: ...
    def cut(self, decision: Decision) -> float | None: ...
    def abandoned(self, decision: Decision) -> float | None: ...
    def unused(self, decision: Decision) -> None: ...
    def broke(self, decision: Decision, model: str, error: BaseException) -> None: ...


class _StreamBase:
    """A routed stream: iterate it (once) for LiteLLM chunks; `decision` names the model serving it, and `cost`
    and `usage` are set when the stream ends (usage is requested from the provider with include_usage; a stream
    stopped part-way has no usage, and its `cost` is the worst case its budget hold was charged). The route
    and its budget hold exist from the stream's creation: close a stream you do not read to its end (`close` /
    `aclose`, or use it as a context manager)."""

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
        self._held = True  # the hold is the stream's to release until its iteration begins, then the iteration's
        self._chunks: weakref.ref[Any] | None = None  # the one iteration (weak: dropping it still ends it at once)
        self._model: str | None = None  # the model whose answer is being read
        self._over = False  # settled, charged or released: nothing more is charged

    def _claim(self, chunks: Any) -> Any:
        """Make `chunks` the stream's one iteration: its decision and budget hold are for one call."""
        if self._chunks is not None or not self._held:
            done = "iterated" if self._chunks is not None else "closed"
            raise RuntimeError(f"this routed stream (route_id {self.decision.route_id!r}) was already {done}: a "
                               "stream is read once, as its route and budget hold are for one call; call "
                               "router.stream/astream again for another answer")
        self._chunks = weakref.ref(chunks)
        return chunks

    def _iteration(self) -> Any:
        """The stream's iteration while it is still referenced (it may be unstarted, suspended or finished)."""
        return None if self._chunks is None else self._chunks()

    def _unread(self) -> None:
        """After closing the iteration: if it never began, nothing was requested, so the hold is released."""
        if self._held:
            self._held, self._over = False, True
            self.caller.unused(self.decision)

    def _dropped(self) -> None:
        """Closing a stream whose iteration was dropped part-way (`break` out of an `async for`): charge it now,
        not when the event loop finalizes the iteration (which then finds it charged)."""
        if self._held or self._over:
            return
        if self._model is None:
            self._abandon()
        else:
            self._cut(self._model, GeneratorExit())

    def _abandon(self) -> None:
        """Stopped before its first chunk: charged its worst case (the provider may bill the request)."""
        if not self._over:
            self._over = True
            self.cost = self.caller.abandoned(self.decision)

    def _call_kwargs(self, card: Model) -> dict[str, Any]:
        return {"messages": self._messages, **self.caller.call_kwargs(card, self._kwargs)}

    def _started(self, model: str) -> None:
        self._model = model
        self.decision = self.caller.served(self.decision, model, list(self._failures))

    def _observe(self, chunk: Any) -> None:
        if getattr(chunk, "usage", None):
            self.usage = usage_of(chunk)

    def _cut(self, model: str, error: BaseException) -> None:
        """The stream stopped before its end: the provider bills what it generated but its usage never arrives, so
        the budget is charged the call's worst-case hold, which `cost` then shows (None without a budget). If it
        broke (not closed by its consumer), that is a failure of the model."""
        if self._over:
            return
        self._over = True
        self.cost = self.caller.cut(self.decision)
        if isinstance(error, Exception):  # GeneratorExit, cancellation: the consumer stopped reading
            self.caller.broke(self.decision, model, error)

    def _ended(self, card: Model) -> None:
        usage = self.usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        self._over = True
        self.cost = self.caller.ended(self.decision, card, usage)


class RoutedStream(_StreamBase):
    def __iter__(self) -> Generator[Any, None, None]:
        return self._claim(self._read())

    def __enter__(self) -> "RoutedStream":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop the stream: one never read releases its hold and its decision stops waiting; one read part-way is
        charged its hold's worst case (its usage never arrives); one finished or closed is left as it is."""
        if (chunks := self._iteration()) is not None:
            chunks.close()  # suspended at a chunk: cut (the worst-case charge); unstarted: it never will start
        else:
            self._dropped()
        self._unread()

    def _read(self) -> Generator[Any, None, None]:
        self._held = False
        litellm = quiet_litellm()

        for model in self._order:
            card = self.caller.card(model)  # the card the call is made, and charged, with
            try:
                with self.caller.hidden(self._messages):
                    chunks = iter(litellm.completion(**self._call_kwargs(card)))
                    first = next(chunks, None)
            except Exception as error:
                with self.caller.hidden(self._messages):  # the prompt stays out of the failure's note and log
                    self.caller.failed(self.decision, model, error, self._failures)
                continue
            except BaseException:  # cancelled or closed before its first chunk
                self._abandon()
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
            self._ended(card)
            return
        with self.caller.hidden(self._messages):
            raise self.caller.all_failed(self.decision, self._failures)


class AsyncRoutedStream(_StreamBase):
    def __aiter__(self) -> AsyncGenerator[Any, None]:
        return self._claim(self._read())

    async def __aenter__(self) -> "AsyncRoutedStream":
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Async `RoutedStream.close`."""
        if (chunks := self._iteration()) is not None:
            await chunks.aclose()
        else:
            self._dropped()
        self._unread()

    async def _read(self) -> AsyncGenerator[Any, None]:
        self._held = False
        litellm = quiet_litellm()

        for model in self._order:
            card = self.caller.card(model)  # the card the call is made, and charged, with
            try:
                with self.caller.hidden(self._messages):
                    chunks = (await litellm.acompletion(**self._call_kwargs(card))).__aiter__()
                    first = await anext(chunks, None)
            except Exception as error:
                with self.caller.hidden(self._messages):  # the prompt stays out of the failure's note and log
                    self.caller.failed(self.decision, model, error, self._failures)
                continue
            except BaseException:  # cancelled or closed before its first chunk
                self._abandon()
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
            self._ended(card)
            return
        with self.caller.hidden(self._messages):
            raise self.caller.all_failed(self.decision, self._failures)

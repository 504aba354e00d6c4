"""Routed streams: LiteLLM chunks from the chosen model, with fallback before the first chunk."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, AsyncIterator, Iterator, Mapping

from .decision import Decision, usage_of

if TYPE_CHECKING:
    from .router import Router

__all__ = ["RoutedStream", "AsyncRoutedStream"]


class _StreamBase:
    """A routed stream: iterate it for LiteLLM chunks; `decision` names the model serving it, and `cost` and
    `usage` are set when the stream ends (usage is requested from the provider with include_usage)."""

    def __init__(self, router: Router, messages: list[dict[str, Any]], decision: Decision, order: list[str],
                 kwargs: Mapping[str, Any]) -> None:
        self.router = router
        self.decision = decision
        self.cost: float | None = None
        self.usage: dict[str, int] = {}
        self._messages = messages
        self._order = order
        self._kwargs = {**kwargs, "stream": True,
                        "stream_options": {"include_usage": True, **kwargs.get("stream_options", {})}}
        self._failures: dict[str, BaseException] = {}

    def _call_kwargs(self, model: str) -> dict[str, Any]:
        return {"messages": self._messages, **self.router.models[model].call_kwargs(), **self._kwargs}

    def _started(self, model: str) -> None:
        self.decision = self.router._served(self.decision, model, list(self._failures))

    def _observe(self, chunk: Any) -> None:
        if getattr(chunk, "usage", None):
            self.usage = usage_of(chunk)

    def _cut(self) -> None:
        """The stream stopped before its end (closed by the consumer, or broken): the provider bills what it
        generated but its usage never arrives, so the budget is charged the call's worst-case hold."""
        self.router.settle(self.decision.route_id)

    def _ended(self, model: str) -> None:
        usage = self.usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        self.cost = self.router.models[model].cost(usage["prompt_tokens"], usage["completion_tokens"])
        self.router.settle(self.decision.route_id, self.cost)
        if self.router.log is not None:
            self.router.log.record_call(self.decision.route_id, self.cost, usage["prompt_tokens"],
                                        usage["completion_tokens"])


class RoutedStream(_StreamBase):
    def __iter__(self) -> Iterator[Any]:
        import litellm

        for model in self._order:
            try:
                with self.router._hidden(self._messages):
                    chunks = iter(litellm.completion(**self._call_kwargs(model)))
                    first = next(chunks, None)
            except Exception as error:
                self.router._failed(self.decision, model, error, self._failures)
                continue
            self._started(model)
            try:
                if first is not None:
                    self._observe(first)
                    yield first
                for chunk in chunks:
                    self._observe(chunk)
                    yield chunk
            except BaseException:
                self._cut()
                raise
            self._ended(model)
            return
        raise self.router._all_failed(self.decision, self._failures)


class AsyncRoutedStream(_StreamBase):
    async def __aiter__(self) -> AsyncIterator[Any]:
        import litellm

        for model in self._order:
            try:
                with self.router._hidden(self._messages):
                    chunks = (await litellm.acompletion(**self._call_kwargs(model))).__aiter__()
                    first = await anext(chunks, None)
            except Exception as error:
                self.router._failed(self.decision, model, error, self._failures)
                continue
            self._started(model)
            try:
                if first is not None:
                    self._observe(first)
                    yield first
                async for chunk in chunks:
                    self._observe(chunk)
                    yield chunk
            except BaseException:
                self._cut()
                raise
            self._ended(model)
            return
        raise self.router._all_failed(self.decision, self._failures)

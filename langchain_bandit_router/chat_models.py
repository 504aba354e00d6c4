"""ChatBanditRouter: a LangChain chat model that routes every call to one of a Router's models."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, AsyncIterator, Callable, Iterator, Sequence

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig, ensure_config
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator

from bandit_router import AllModelsFailedError, Completion, ConfigError, Decision, Router
from bandit_router.decision import query_text
from bandit_router.feedback import Evaluator
from bandit_router.router import check_cost_weight

from .messages import route_metadata, to_chunk, to_message, to_openai, usage_metadata

__all__ = ["ChatBanditRouter"]

_CONFIGURABLE = ("cost_weight", "task", "thread_id")  # read from config={"configurable": {...}}
_MAX_PINS = 100_000


@dataclass(frozen=True)
class _Call:
    """One call's routing arguments and the LiteLLM kwargs that pass through."""

    messages: list[dict[str, Any]]
    cost_weight: float | None
    models: list[str] | None
    params: dict[str, Any]
    thread_id: Any = None
    pinned: str | None = None
    task: str | None = None

    def route(self) -> dict[str, Any]:
        """Keyword arguments of Router.complete/stream: the pinned model, else the allowed subset."""
        return {"cost_weight": self.cost_weight, "models": [self.pinned] if self.pinned else self.models,
                "task": self.task, **self.params}


class ChatBanditRouter(BaseChatModel):
    """A chat model that picks, for every call, the model of `router` that should answer it.

    Drop it in wherever a chat model goes (LCEL chains, agents, `bind_tools`, `with_structured_output`):
    each call is routed, sent through LiteLLM, and falls back to the next-best model on provider failures
    (inside the core Router). `response_metadata` carries `route_id`, `model_name` (the model used), `cost`
    (USD), `cost_weight`, `propensity`, `failed` (models that failed first) and `task`; reward the call with
    `router.feedback(route_id, score)`, by run id through `FeedbackHandler`, or automatically with `evaluator`.

    Per call: `cost_weight=` (also `config={"configurable": {"cost_weight": 0.7}}`), `models=[...]` (allowed
    subset), `model=` (one model), `task=` (the kind of request, one of the router's `tasks`; also
    `llm.bind(task="summarise")` or the run config's `configurable`; `task=None` routes on the prompt alone), and
    any LiteLLM kwarg (temperature, max_tokens, stop, timeout, ...).
    With tools bound only models with `supports_tools` are eligible.

    `pin_model=True` keeps the model chosen for a thread's first call for every later call of the thread
    (`config={"configurable": {"thread_id": ...}}`, as LangGraph agents pass it), instead of routing each
    agent step; if the pinned model fails, the call is re-routed and the thread re-pinned.
    """

    router: Router
    """The core router: models, policy, decision log."""
    cost_weight: float | None = None
    """Default dial in [0, 1] for this instance (None: the router's)."""
    models: list[str] | None = None
    """Models this instance may use (None: all of the router's)."""
    task: str | None = None
    """Kind of request this instance sends, one of the router's tasks (None: routed on the prompt alone)."""
    pin_model: bool = False
    """Keep one model per thread (see the class docstring)."""
    evaluator: Evaluator | None = None
    """Scores a sampled share of answers in the background and feeds the scores back."""
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float | None = None
    """Seconds per provider call before it counts as failed."""
    stop: list[str] | None = None
    max_retries: int = 0
    """Retries of the same model before falling back to the next one (LiteLLM's max_retries)."""
    streaming: bool = False
    """Stream under the hood of invoke (token callbacks)."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Other LiteLLM kwargs sent with every call."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    _pins: OrderedDict = PrivateAttr(default_factory=OrderedDict)
    _pins_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @field_validator("cost_weight", mode="before")
    @classmethod
    def _check_cost_weight(cls, value: Any) -> float | None:
        return None if value is None else check_cost_weight(value)

    @model_validator(mode="after")
    def _check_models(self) -> ChatBanditRouter:
        unknown = [m for m in self.models or () if m not in self.router.models]
        if unknown:
            raise ConfigError(f"models contains unknown names {unknown}; known: {list(self.router.models)}")
        self.router.check_task(self.task)
        return self

    @property
    def _llm_type(self) -> str:
        return "bandit-router"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"models": self.models or list(self.router.models), "cost_weight": self.cost_weight,
                "task": self.task, "pin_model": self.pin_model}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "bandit_router"
        params.setdefault("ls_model_name", "bandit-router")  # the model itself is chosen per call
        return params

    # -- the dial and the pin key from the run config --------------------------------------------------------
    def invoke(self, input: LanguageModelInput, config: RunnableConfig | None = None, *,
               stop: list[str] | None = None, **kwargs: Any) -> AIMessage:
        return super().invoke(input, config, stop=stop, **_configured(config, kwargs))

    async def ainvoke(self, input: LanguageModelInput, config: RunnableConfig | None = None, *,
                      stop: list[str] | None = None, **kwargs: Any) -> AIMessage:
        return await super().ainvoke(input, config, stop=stop, **_configured(config, kwargs))

    def stream(self, input: LanguageModelInput, config: RunnableConfig | None = None, *,
               stop: list[str] | None = None, **kwargs: Any) -> Iterator[AIMessageChunk]:
        return super().stream(input, config, stop=stop, **_configured(config, kwargs))

    def astream(self, input: LanguageModelInput, config: RunnableConfig | None = None, *,
                stop: list[str] | None = None, **kwargs: Any) -> AsyncIterator[AIMessageChunk]:
        return super().astream(input, config, stop=stop, **_configured(config, kwargs))

    # -- tools ----------------------------------------------------------------------------------------------
    def bind_tools(self, tools: Sequence[dict[str, Any] | type | Callable | BaseTool], *,
                   tool_choice: dict | str | bool | None = None,
                   **kwargs: Any) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (OpenAI format through LiteLLM); only tool-capable models are eligible for these calls.

        tool_choice: "auto", "none", "any"/"required"/True (call some tool), a tool name, or an OpenAI dict.
        """
        formatted = [convert_to_openai_tool(t) for t in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = _tool_choice(tool_choice, formatted)
        return self.bind(tools=formatted, **kwargs)

    # -- calls ----------------------------------------------------------------------------------------------
    def _call(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> _Call:
        kwargs = dict(kwargs)
        cost_weight = kwargs.pop("cost_weight", self.cost_weight)
        models = kwargs.pop("models", self.models)
        if (model := kwargs.pop("model", None)) is not None:
            models = [model]
        task = kwargs.pop("task", self.task)
        thread_id = kwargs.pop("thread_id", None)
        thread_id = thread_id if self.pin_model else None
        defaults = {"temperature": self.temperature, "max_tokens": self.max_tokens, "timeout": self.timeout,
                    "stop": stop or self.stop or None, "max_retries": self.max_retries}
        params = {**self.model_kwargs, **{k: v for k, v in defaults.items() if v is not None}, **kwargs}
        with self._pins_lock:
            pinned = self._pins.get(thread_id) if thread_id is not None else None
        if pinned is not None and models is not None and pinned not in models:
            pinned = None
        return _Call(to_openai(messages), cost_weight, None if models is None else list(models), params,
                     thread_id, pinned, task)

    def _unpinned(self, call: _Call) -> _Call | None:
        """The call re-routed among the other allowed models after its pinned model failed (None if pinned to
        no model, or if no other model is allowed)."""
        if call.pinned is None:
            return None
        others = [m for m in call.models or self.router.models if m != call.pinned]
        return replace(call, pinned=None, models=others) if others else None

    def _served(self, call: _Call, decision: Decision, answer: str) -> None:
        """After a call: pin its thread to the model that answered if asked; queue the answer for the evaluator."""
        if call.thread_id is not None:
            with self._pins_lock:
                self._pins[call.thread_id] = decision.model
                self._pins.move_to_end(call.thread_id)
                while len(self._pins) > _MAX_PINS:
                    self._pins.popitem(last=False)
        if self.evaluator is not None and answer:
            self.evaluator.submit(decision.route_id, query_text(call.messages)[0], answer, decision.feedback_token)

    def _result(self, call: _Call, completion: Completion) -> ChatResult:
        decision = completion.decision
        message = to_message(completion.response, decision, completion.cost, dict(completion.usage))
        self._served(call, decision, message.text)
        return ChatResult(generations=[ChatGeneration(message=message)],
                          llm_output={"route_id": decision.route_id, "model_name": decision.model})

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        call = self._call(messages, stop, kwargs)
        try:
            completion = self.router.complete(call.messages, **call.route())
        except AllModelsFailedError:
            if (call := self._unpinned(call)) is None:
                raise
            completion = self.router.complete(call.messages, **call.route())
        return self._result(call, completion)

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        call = self._call(messages, stop, kwargs)
        try:
            completion = await self.router.acomplete(call.messages, **call.route())
        except AllModelsFailedError:
            if (call := self._unpinned(call)) is None:
                raise
            completion = await self.router.acomplete(call.messages, **call.route())
        return self._result(call, completion)

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        call = self._call(messages, stop, kwargs)
        try:
            yield from self._stream_call(call)
        except AllModelsFailedError:  # raised before any chunk: every model failed to start
            if (call := self._unpinned(call)) is None:
                raise
            yield from self._stream_call(call)

    def _stream_call(self, call: _Call) -> Iterator[ChatGenerationChunk]:
        stream = self.router.stream(call.messages, **call.route())
        text, finish_reason = [], None
        for chunk in stream:
            finish_reason = _finish_reason(chunk) or finish_reason
            if (message := to_chunk(chunk)) is not None:
                text.append(message.text)
                yield ChatGenerationChunk(message=message)
        yield self._last_chunk(call, stream, "".join(text), finish_reason)

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        call = self._call(messages, stop, kwargs)
        try:
            async for chunk in self._astream_call(call):
                yield chunk
        except AllModelsFailedError:
            if (call := self._unpinned(call)) is None:
                raise
            async for chunk in self._astream_call(call):
                yield chunk

    async def _astream_call(self, call: _Call) -> AsyncIterator[ChatGenerationChunk]:
        stream = self.router.astream(call.messages, **call.route())
        text, finish_reason = [], None
        async for chunk in stream:
            finish_reason = _finish_reason(chunk) or finish_reason
            if (message := to_chunk(chunk)) is not None:
                text.append(message.text)
                yield ChatGenerationChunk(message=message)
        yield self._last_chunk(call, stream, "".join(text), finish_reason)

    def _last_chunk(self, call: _Call, stream: Any, text: str, finish_reason: str | None) -> ChatGenerationChunk:
        """The closing chunk: token usage and routing metadata, known once the stream has ended."""
        decision = stream.decision
        self._served(call, decision, text)
        metadata = {**route_metadata(decision, stream.cost), "finish_reason": finish_reason}
        return ChatGenerationChunk(message=AIMessageChunk(
            content="", usage_metadata=usage_metadata(stream.usage), response_metadata=metadata,
            chunk_position="last"))


def _configured(config: RunnableConfig | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """kwargs with the dial, task and thread id taken from the run config's `configurable` unless given per call."""
    configurable = ensure_config(config).get("configurable") or {}
    return {**{k: configurable[k] for k in _CONFIGURABLE if k in configurable}, **kwargs}


def _finish_reason(chunk: Any) -> str | None:
    return chunk.choices[0].finish_reason if chunk.choices else None


def _tool_choice(choice: dict | str | bool, tools: list[dict[str, Any]]) -> dict | str:
    """LangChain's tool_choice in OpenAI's form."""
    names = [t["function"]["name"] for t in tools]
    if isinstance(choice, dict):
        return choice
    if choice is True or choice in ("any", "required"):
        return {"type": "function", "function": {"name": names[0]}} if len(names) == 1 else "required"
    if choice in ("auto", "none"):
        return choice
    if choice in names:
        return {"type": "function", "function": {"name": choice}}
    raise ConfigError(f"tool_choice must be 'auto', 'none', 'any', 'required', True, a bound tool's name {names} "
                      f"or an OpenAI tool_choice dict, got {choice!r}")

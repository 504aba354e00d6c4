"""ChatBanditRouter: a LangChain chat model that routes every call to one of a Router's models."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from operator import itemgetter
from typing import Any, AsyncIterator, Callable, Iterator, Literal, Sequence

from langchain_core.exceptions import OutputParserException
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult, Generation
from langchain_core.runnables import Runnable, RunnableConfig, RunnableMap, RunnablePassthrough, ensure_config
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator

from bandit_router import AllModelsFailedError, Completion, ConfigError, Decision, NoEligibleModelError, Router
from bandit_router.decision import query_text
from bandit_router.feedback import Evaluator, check_call_kwargs
from bandit_router.checks import check_budget_key, check_cost_weight, check_model_names
from bandit_router.models import masked

from .messages import route_metadata, to_chunk, to_messages, to_openai, usage_metadata

__all__ = ["ChatBanditRouter"]

_CONFIGURABLE = ("cost_weight", "task", "models", "budget_key")  # read from config={"configurable": {...}}
# a pinned model that failed, cannot take the call, or was removed from the router while the call was routed
_REROUTE = (AllModelsFailedError, NoEligibleModelError, ConfigError)
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
    budget_key: str | None = None
    failed: tuple[str, ...] = ()  # the pinned model, when it failed and the call was re-routed

    def served(self, decision: Decision) -> Decision:
        """`decision` as reported: with the pinned model that failed before it was made, if one did."""
        return replace(decision, failed=(*self.failed, *decision.failed)) if self.failed else decision

    def route(self) -> dict[str, Any]:
        """Keyword arguments of Router.complete/stream: the pinned model, else the allowed subset."""
        return {"cost_weight": self.cost_weight, "models": [self.pinned] if self.pinned else self.models,
                "task": self.task, "budget_key": self.budget_key, **self.params}


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
    `budget_key=` (the budget account charged besides the global one, e.g. a user's; also per instance and in
    `configurable`) and any LiteLLM kwarg (temperature, max_tokens, stop, timeout, ...).
    With tools bound only models with `supports_tools` are eligible.

    `pin_model=True` keeps the model chosen for a thread's first call for every later call of the thread
    (`config={"configurable": {"thread_id": ...}}`, as LangGraph agents pass it), instead of routing each
    agent step; an instance that has not served the thread (a sibling, another process) pins it to the model of
    the last routed reply in its history. If the pinned model fails, cannot take the call or was removed from the
    router, the call is re-routed and the thread re-pinned.
    """

    router: Router
    """The core router: models, policy, decision log."""
    cost_weight: float | None = None
    """Default dial in [0, 1] for this instance (None: the router's)."""
    models: list[str] | None = None
    """Models this instance may use (None: all of the router's)."""
    task: str | None = None
    """Kind of request this instance sends, one of the router's tasks (None: routed on the prompt alone)."""
    budget_key: str | None = None
    """Budget account (a user or tenant) this instance's calls are charged to besides the global one (None: none)."""
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
    model_kwargs: dict[str, Any] = Field(default_factory=dict, repr=False)
    """Other LiteLLM kwargs sent with every call (not in the repr, which tracers record: it may hold credentials)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    _pins: OrderedDict = PrivateAttr(default_factory=OrderedDict)
    _pins_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def __init__(self, router: Router | None = None, **kwargs: Any) -> None:
        """`router` by name or by position: `ChatBanditRouter(router, cost_weight=0.2)`."""
        super().__init__(**({} if router is None else {"router": router}), **kwargs)

    @field_validator("cost_weight", mode="before")
    @classmethod
    def _check_cost_weight(cls, value: Any) -> float | None:
        return None if value is None else check_cost_weight(value)

    @field_validator("budget_key", mode="before")
    @classmethod
    def _check_budget_key(cls, value: Any) -> str | None:
        return check_budget_key(value)

    @model_validator(mode="after")
    def _check_models(self) -> ChatBanditRouter:
        if self.models is not None:
            check_model_names(self.models, self.router.models)
        self.router.check_task(self.task)
        check_call_kwargs({**self.model_kwargs, "max_tokens": self.max_tokens})
        return self

    def with_options(self, **settings: Any) -> ChatBanditRouter:
        """A copy sharing the router with some settings changed (cost_weight, models, task, budget_key, ...),
        checked like the constructor's: a dial per agent or graph step, a budget key per user. Prefer it to `bind` for
        agents: they call `bind_tools` on the model they get, and a binding's kwargs do not survive that."""
        return self.model_copy(update=settings)

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> ChatBanditRouter:
        """A copy sharing the router; `update` is validated like the constructor's arguments."""
        if update:
            type(self).model_validate({**{k: getattr(self, k) for k in type(self).model_fields}, **update})
        copy = super().model_copy(update=update)  # shallow: the router (locks, log, store) is shared, not copied
        copy._pins, copy._pins_lock = OrderedDict(), threading.Lock()
        return copy

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> ChatBanditRouter:
        """A copy sharing the router (a service handle, like an HTTP client), with its own thread pins."""
        return self.model_copy()

    def get_num_tokens(self, text: str) -> int:
        """Tokens in `text` by LiteLLM's default tokenizer (cl100k; each model's own may differ a little)."""
        import litellm

        return litellm.token_counter(text=text)

    def get_num_tokens_from_messages(self, messages: list[BaseMessage], tools: Sequence[Any] | None = None) -> int:
        """Tokens of `messages` (and tool specs) by LiteLLM's default tokenizer."""
        import litellm

        specs = [convert_to_openai_tool(t) for t in tools] if tools else None
        return litellm.token_counter(messages=to_openai(messages), tools=specs)

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
        return super().invoke(input, config, stop=stop, **self._configured(config, kwargs))

    async def ainvoke(self, input: LanguageModelInput, config: RunnableConfig | None = None, *,
                      stop: list[str] | None = None, **kwargs: Any) -> AIMessage:
        return await super().ainvoke(input, config, stop=stop, **self._configured(config, kwargs))

    def stream(self, input: LanguageModelInput, config: RunnableConfig | None = None, *,
               stop: list[str] | None = None, **kwargs: Any) -> Iterator[AIMessageChunk]:
        return super().stream(input, config, stop=stop, **self._configured(config, kwargs))

    def astream(self, input: LanguageModelInput, config: RunnableConfig | None = None, *,
                stop: list[str] | None = None, **kwargs: Any) -> AsyncIterator[AIMessageChunk]:
        return super().astream(input, config, stop=stop, **self._configured(config, kwargs))

    def _configured(self, config: RunnableConfig | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        """kwargs with the dial, task, models and budget key taken from the run config's `configurable` unless
        given per call, and its thread id if threads are pinned (only then: call kwargs are part of LangChain's cache
        key). Other configurable keys are left alone, as LangChain leaves keys it does not know."""
        configurable = ensure_config(config).get("configurable") or {}
        names = (*_CONFIGURABLE, "thread_id") if self.pin_model else _CONFIGURABLE
        return {**{k: configurable[k] for k in names if k in configurable}, **kwargs}

    # -- tools ----------------------------------------------------------------------------------------------
    def bind_tools(self, tools: Sequence[dict[str, Any] | type | Callable | BaseTool], *,
                   tool_choice: dict | str | bool | None = None, strict: bool | None = None,
                   **kwargs: Any) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (OpenAI format through LiteLLM); only tool-capable models are eligible for these calls.

        tool_choice: "auto", "none", "any"/"required"/True (call some tool), a tool name, or an OpenAI dict.
        strict: OpenAI's strict schema adherence, set on each function.
        """
        formatted = [convert_to_openai_tool(t, strict=strict) for t in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = _tool_choice(tool_choice, formatted)
        return self.bind(tools=formatted, **kwargs)

    def with_structured_output(self, schema: dict | type, *, include_raw: bool = False,
                               method: Literal["function_calling", "json_schema", "json_mode"] | None = None,
                               strict: bool | None = None, **kwargs: Any) -> Runnable[LanguageModelInput, Any]:
        """Replies parsed into `schema` (a Pydantic class, TypedDict or JSON schema), like ChatOpenAI's.

        method: "function_calling" (a forced tool call; tool-capable models only), "json_schema" (OpenAI's
        `response_format` with the schema) or "json_mode" (`response_format={"type": "json_object"}`; the prompt
        must ask for JSON with the schema's keys). None: function calling if an allowed model supports tools,
        else json_schema. The json methods leave every model eligible.
        """
        if kwargs:
            raise ConfigError(f"with_structured_output got unknown arguments {sorted(kwargs)}")
        allowed = self.models or list(self.router.models)
        if method is None:
            method = "function_calling" if any(self.router.models[m].supports_tools for m in allowed) else "json_schema"
        traced = {"ls_structured_output_format": {"kwargs": {"method": method}, "schema": schema}}  # for tracers
        if method == "function_calling":
            return _structured(self.bind_tools([schema], tool_choice="any", strict=strict, **traced),
                               _tool_parser(schema), include_raw)
        if method not in ("json_schema", "json_mode"):
            raise ConfigError(f"method must be 'function_calling', 'json_schema', 'json_mode' or None, got {method!r}")
        if method == "json_mode":
            response_format: dict[str, Any] = {"type": "json_object"}
        else:
            function = convert_to_openai_tool(schema, strict=strict)["function"]
            response_format = {"type": "json_schema", "json_schema": {
                "name": function["name"], "description": function.get("description", ""),
                "schema": function.get("parameters", {}), **({} if strict is None else {"strict": strict})}}
        parser = PydanticOutputParser(pydantic_object=schema) if _is_pydantic_class(schema) else JsonOutputParser()
        return _structured(self.bind(response_format=response_format, **traced), parser, include_raw)

    # -- calls ----------------------------------------------------------------------------------------------
    def _call(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> _Call:
        kwargs = dict(kwargs)
        cost_weight = kwargs.pop("cost_weight", self.cost_weight)
        models = kwargs.pop("models", self.models)
        if (model := kwargs.pop("model", None)) is not None:
            models = [model]
        task = kwargs.pop("task", self.task)
        budget_key = check_budget_key(kwargs.pop("budget_key", self.budget_key))
        thread_id = kwargs.pop("thread_id", None)
        thread_id = thread_id if self.pin_model else None
        check_call_kwargs(kwargs)
        params = self._params(stop, kwargs)
        openai_messages = to_openai(messages)
        models = None if models is None else check_model_names(models, self.router.models)
        with self._pins_lock:
            pinned = self._pins.get(thread_id) if thread_id is not None else None
        if pinned is None and thread_id is not None:  # another instance or process: the thread's history says
            pinned = _answered_by(messages)
        if pinned is not None and pinned not in (self.router.models if models is None else models):
            pinned = None  # removed from the router, or not allowed for this call: routed afresh, then re-pinned
        return _Call(openai_messages, cost_weight, None if models is None else list(models), params,
                     thread_id, pinned, task, budget_key)

    def _params(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The LiteLLM kwargs of a call: model_kwargs, the instance's settings, then the call's `kwargs`."""
        defaults = {"temperature": self.temperature, "max_tokens": self.max_tokens, "timeout": self.timeout,
                    "stop": stop or self.stop or None, "max_retries": self.max_retries}
        return {**self.model_kwargs, **{k: v for k, v in defaults.items() if v is not None}, **kwargs}

    def _get_llm_string(self, stop: list[str] | None = None, **kwargs: Any) -> str:
        """LangChain's cache key: the routing settings and every LiteLLM kwarg of the call, the instance's
        (temperature, max_tokens, model_kwargs, ...) as well as the call's, credentials masked; not the budget key,
        which changes who pays, not the answer (a cached reply costs nothing)."""
        params = masked(self._params(stop, {k: v for k, v in kwargs.items() if k != "budget_key"}))
        return super()._get_llm_string(params.pop("stop", None), **params)

    def _unpinned(self, call: _Call, error: Exception) -> _Call | None:
        """The call re-routed among the other allowed models after its pinned model failed, could not take it (a
        history grown beyond its context window: NoEligibleModelError) or was removed from the router after `_call`
        looked (ConfigError); None if not pinned, if no other model is allowed, or for a ConfigError of another
        cause."""
        if call.pinned is None or (isinstance(error, ConfigError) and call.pinned in self.router.models):
            return None
        others = [m for m in call.models or self.router.models if m != call.pinned]
        failed = (call.pinned,) if isinstance(error, AllModelsFailedError) else ()
        return replace(call, pinned=None, models=others, failed=failed) if others else None

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
        decision = call.served(completion.decision)
        messages = to_messages(completion.response, decision, completion.cost, dict(completion.usage))
        if _is_pydantic_class(schema := call.params.get("response_format")):
            messages[0].additional_kwargs["parsed"] = _parsed(schema, messages[0])
        self._served(call, decision, _graded(messages[0].text, messages[0]))
        return ChatResult(generations=[ChatGeneration(message=m, generation_info={
            "finish_reason": m.response_metadata["finish_reason"]}) for m in messages],
                          llm_output={"route_id": decision.route_id, "model_name": decision.model,
                                      "token_usage": dict(completion.usage),
                                      "system_fingerprint": messages[0].response_metadata["system_fingerprint"]})

    def _combine_llm_outputs(self, llm_outputs: list[dict | None]) -> dict:
        """One `llm_output` for a batch: token_usage summed over its calls."""
        usage: dict[str, int] = {}
        for output in llm_outputs:
            for key, value in ((output or {}).get("token_usage") or {}).items():
                usage[key] = usage.get(key, 0) + value
        return {"token_usage": usage, "model_name": "bandit-router"}

    def _convert_cached_generations(self, cache_val: list[Generation]) -> list[ChatGeneration]:
        """A reply from LangChain's cache is reported as cached: no route to rate (its decision was rated, or
        not, when it was made) and no cost, as no model was called."""
        cached = []
        for generation in super()._convert_cached_generations(cache_val):
            metadata = {**generation.message.response_metadata, "cached": True, "route_id": None,
                        "feedback_token": None, "cost": 0.0}
            cached.append(ChatGeneration(message=generation.message.model_copy(update={
                "response_metadata": metadata}), generation_info=generation.generation_info))
        return cached

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        call = self._call(messages, stop, kwargs)
        try:
            completion = self.router.complete(call.messages, **call.route())
        except _REROUTE as error:
            if (call := self._unpinned(call, error)) is None:
                raise
            completion = self.router.complete(call.messages, **call.route())
        return self._result(call, completion)

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        call = self._call(messages, stop, kwargs)
        try:
            completion = await self.router.acomplete(call.messages, **call.route())
        except _REROUTE as error:
            if (call := self._unpinned(call, error)) is None:
                raise
            completion = await self.router.acomplete(call.messages, **call.route())
        return self._result(call, completion)

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        call = self._call(messages, stop, kwargs)
        try:
            yield from self._stream_call(call)
        except _REROUTE as error:  # raised before any chunk: every model failed to start
            if (call := self._unpinned(call, error)) is None:
                raise
            yield from self._stream_call(call)

    def _stream_call(self, call: _Call) -> Iterator[ChatGenerationChunk]:
        stream = self.router.stream(call.messages, **call.route())
        tally = _Tally()
        for chunk in stream:
            if not tally.seen:
                yield _first_chunk(call.served(stream.decision))
            if (piece := tally.see(chunk)) is not None:
                yield piece
        yield self._last_chunk(call, stream, tally)

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        call = self._call(messages, stop, kwargs)
        try:
            async for chunk in self._astream_call(call):
                yield chunk
        except _REROUTE as error:
            if (call := self._unpinned(call, error)) is None:
                raise
            async for chunk in self._astream_call(call):
                yield chunk

    async def _astream_call(self, call: _Call) -> AsyncIterator[ChatGenerationChunk]:
        await self.router.context.prefetch(call.messages, self.router.limits.max_prompt_chars)  # encode off the loop
        stream = self.router.astream(call.messages, **call.route())
        tally = _Tally()
        async for chunk in stream:
            if not tally.seen:
                yield _first_chunk(call.served(stream.decision))
            if (piece := tally.see(chunk)) is not None:
                yield piece
        yield self._last_chunk(call, stream, tally)

    def _last_chunk(self, call: _Call, stream: Any, tally: _Tally) -> ChatGenerationChunk:
        """The closing chunk: token usage and cost, known once the stream has ended (the route came first)."""
        self._served(call, stream.decision, _graded("".join(tally.text), tally.tools))
        metadata = {"cost": stream.cost, "finish_reason": tally.finish_reason}
        return ChatGenerationChunk(message=AIMessageChunk(
            content="", usage_metadata=usage_metadata(stream.usage, tally.usage), response_metadata=metadata,
            chunk_position="last"))


class _Tally:
    """What a stream's chunks add up to: its text, its finish reason and the provider's usage (with details)."""

    def __init__(self) -> None:
        self.seen = 0
        self.text: list[str] = []
        self.tools: AIMessageChunk | None = None  # the chunks carrying tool calls, added up
        self.finish_reason: str | None = None
        self.usage: Any = None

    def see(self, chunk: Any) -> ChatGenerationChunk | None:
        """Count a LiteLLM chunk in; its LangChain chunk, if it carries text, reasoning or a tool call."""
        self.seen += 1
        self.finish_reason = (chunk.choices[0].finish_reason if chunk.choices else None) or self.finish_reason
        self.usage = getattr(chunk, "usage", None) or self.usage
        if (message := to_chunk(chunk)) is None:
            return None
        self.text.append(message.text)
        if message.tool_call_chunks:
            self.tools = message if self.tools is None else self.tools + message
        return ChatGenerationChunk(message=message)


def _answered_by(messages: Sequence[BaseMessage]) -> str | None:
    """The model that gave the conversation's last routed reply (a checkpointer keeps it in the history)."""
    for message in reversed(messages):
        if isinstance(message, AIMessage) and message.response_metadata.get("route_id"):
            return message.response_metadata.get("model_name")
    return None


def _is_pydantic_class(schema: Any) -> bool:
    """Whether `schema` is a Pydantic model class (not a TypedDict or a JSON schema)."""
    return isinstance(schema, type) and is_basemodel_subclass(schema)


def _parsed(schema: type, message: AIMessage) -> Any:
    """`response_format=Schema` (a Pydantic class), as ChatOpenAI reads it: the reply parsed into `schema` (None
    for an empty reply, a refusal); OutputParserException when it does not fit."""
    if not message.text:
        return None
    try:
        return schema.model_validate_json(message.text)  # type: ignore[attr-defined]
    except ValueError as error:
        raise OutputParserException(f"the reply does not fit response_format {schema.__name__}: {error}",
                                    llm_output=message.text) from error


def _graded(text: str, message: AIMessage | None) -> str:
    """What the evaluator grades of a reply: its text, else its tool calls as JSON (an agent's step, structured
    output by function calling)."""
    calls = [] if message is None else message.tool_calls
    return text or (json.dumps([{"name": c["name"], "arguments": c["args"]} for c in calls]) if calls else "")


def _first_chunk(decision: Decision) -> ChatGenerationChunk:
    """The opening chunk: the route, so a stream stopped early can still be rated."""
    return ChatGenerationChunk(message=AIMessageChunk(content="", response_metadata=route_metadata(decision)))


def _tool_parser(schema: dict | type) -> Runnable:
    from langchain_core.output_parsers.openai_tools import JsonOutputKeyToolsParser, PydanticToolsParser

    if _is_pydantic_class(schema):
        return PydanticToolsParser(tools=[schema], first_tool_only=True)
    return JsonOutputKeyToolsParser(key_name=convert_to_openai_tool(schema)["function"]["name"], first_tool_only=True)


def _structured(llm: Runnable, parser: Runnable, include_raw: bool) -> Runnable:
    """`llm | parser`, or with include_raw a dict of the raw message, the parsed value and any parsing error."""
    if not include_raw:
        return llm | parser
    parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
    failed = RunnablePassthrough.assign(parsed=lambda _: None)
    return RunnableMap(raw=llm) | parsed.with_fallbacks([failed], exception_key="parsing_error")


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

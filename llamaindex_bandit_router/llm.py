"""BanditRouterLLM: a LlamaIndex function-calling LLM that routes every call through a bandit_router.Router."""

from __future__ import annotations

import weakref
from contextvars import copy_context
from typing import Any, ContextManager, Dict, List, Optional, Sequence, Union

from llama_index.core.base.llms.generic_utils import (achat_to_completion_decorator,
                                                       astream_chat_to_completion_decorator,
                                                       chat_to_completion_decorator,
                                                       stream_chat_to_completion_decorator)
from llama_index.core.base.llms.types import (ChatMessage, ChatResponse, ChatResponseAsyncGen, ChatResponseGen,
                                              CompletionResponse, CompletionResponseAsyncGen, CompletionResponseGen,
                                              LLMMetadata, MessageRole, ToolCallBlock)
from llama_index.core.bridge.pydantic import Field, PrivateAttr, field_serializer
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.tools.types import BaseTool

from bandit_router import Completion, ConfigError, Decision, InvalidPromptError, Router
from bandit_router.feedback import RouteRecorder, check_call_kwargs, route_metadata
from bandit_router.checks import check_budget_key, check_cost_weight, check_integer, check_model_names
from bandit_router.models import masked
from bandit_router.streaming import AsyncRoutedStream, RoutedStream

from .messages import StreamedMessage, from_openai, to_openai

__all__ = ["BanditRouterLLM"]

_TOOL_CHOICES = ("auto", "none", "required")
_CHECKED = ("cost_weight", "models", "task", "budget_key", "call_kwargs", "max_retries")


def _checked(router: Router, name: str, value: Any) -> Any:
    """A setting of the LLM, checked against `router` (ConfigError naming the field)."""
    if name == "cost_weight":
        return None if value is None else check_cost_weight(value)
    if name == "models":
        return None if value is None else check_model_names(value, router.models)
    if name == "task":
        router.check_task(value)
        return value
    if name == "budget_key":
        return check_budget_key(value)
    if name == "max_retries":
        return check_integer(value, "max_retries", 0, 100)
    check_call_kwargs(value)
    if masked_names := [k for k, v in value.items() if "[REDACTED]" in str(v)]:
        raise ConfigError(f"call_kwargs {masked_names} hold '[REDACTED]' (to_dict masks credentials): give the "
                          f"real values")
    return dict(value)


def _settings(router: Router, settings: Dict[str, Any]) -> Dict[str, Any]:
    """`settings` of the LLM checked (`_checked`), a task or budget key given in `call_kwargs` moved to the setting
    of that name, where every call reads it (ConfigError when the setting names another one)."""
    checked = {k: _checked(router, k, v) if k in _CHECKED else v for k, v in settings.items()}
    call_kwargs = checked.get("call_kwargs") or {}
    for name in ("task", "budget_key"):
        if name in call_kwargs:
            value = call_kwargs.pop(name)
            if checked.get(name) not in (None, value):
                raise ConfigError(f"{name} is given twice with different values: {name}={checked[name]!r} and "
                                  f"call_kwargs[{name!r}]={value!r}; give it once")
            checked[name] = _checked(router, name, value)
    return checked


def _prompt(prompt: Any) -> str:
    if not isinstance(prompt, str):
        raise InvalidPromptError(f"prompt must be a str, got {type(prompt).__name__}")
    return prompt


def routing_info(decision: Decision, cost: float | None = None,
                 usage: Dict[str, int] | None = None) -> dict[str, Any]:
    """What a response says about its routing (the kit's route metadata): route_id, model, cost_weight,
    propensity, failed models, feedback_token, task, and once the call is done its cost in USD and token counts."""
    return route_metadata(decision, cost, usage, model_key="model")


def _tagged(raw: Any, info: dict[str, Any]) -> Any:
    """A copy of the LiteLLM response or chunk `raw` carrying the routing `info` in its `bandit_router` field (as
    the service's responses do), so that what LlamaIndex forwards of it names the route: an agent's `AgentStream.raw`
    and `AgentOutput.raw` (`raw["bandit_router"]["route_id"]`). A stream that sent no chunk gets just that field."""
    if raw is None:
        return {"bandit_router": dict(info)}
    return raw.model_copy(update={"bandit_router": dict(info)})


def _settled(stream: RoutedStream | AsyncRoutedStream, info: dict[str, Any]) -> None:
    """Write a stream's cost and token counts into its recorded `info` (none if it was never routed)."""
    if info:
        info.update(routing_info(stream.decision, stream.cost, stream.usage))


# One recorder per router: every LLM built over it records into the same record_routes() blocks (a query engine's
# answers and its condense step may be served by two LLMs).
_RECORDERS: "weakref.WeakKeyDictionary[Router, RouteRecorder]" = weakref.WeakKeyDictionary()


class BanditRouterLLM(FunctionCallingLLM):
    """A LlamaIndex LLM whose every call is routed by `router` to the model that should answer it.

    Use it as `Settings.llm`, in a query engine or in an agent. The dial `cost_weight` (0 = quality only,
    1 = cost matters most) is set here or per call (`llm.chat(messages, cost_weight=0.7)`); `models` limits the
    eligible models. Each response's `additional_kwargs` (and `raw["bandit_router"]`, `raw` being the LiteLLM
    response) tell which model answered: route_id, model, cost_weight, propensity, failed, task, cost (USD) and
    token counts; an agent's streamed `AgentStream.raw` carries them too. Rate an answer
    with `llm.feedback(route_id, score)`; provider failures fall back to other models inside the router.
    `task` names the kind of request this LLM serves (one of the router's `tasks`, e.g. "rag-answer"), also per
    call (`task=`; `task=None` routes on the prompt alone), so the router learns which models suit it. Other
    keyword arguments of a call go to LiteLLM through the router (e.g. temperature, max_tokens, timeout); unknown
    ones are refused. `max_retries` (default 0) retries the same model before the router falls back to the next.
    `budget_key` charges every call to that key's account of the router's budget (a user or tenant; per call
    `budget_key=`, also accepted in `call_kwargs`). `with_options(cost_weight=..., task=..., models=...,
    budget_key=...)` gives a sibling LLM over the same router (e.g. one per query engine or per user:
    `index.as_query_engine(llm=llm.with_options(budget_key="user-42"))`).
    """

    cost_weight: Optional[float] = Field(default=None, description="Dial in [0, 1]; None uses the router's.")
    models: Optional[List[str]] = Field(default=None, description="Models allowed; None allows all.")
    task: Optional[str] = Field(default=None, description="Kind of request, one of the router's tasks; None: none.")
    budget_key: Optional[str] = Field(default=None, description="Budget account charged (a user); None: global only.")
    call_kwargs: Dict[str, Any] = Field(default_factory=dict, repr=False,
                                        description="LiteLLM arguments for every call, e.g. temperature.")
    max_retries: int = Field(default=0, ge=0, description="Retries of the same model before falling back.")
    _router: Router = PrivateAttr()

    @field_serializer("call_kwargs")
    def _masked(self, call_kwargs: Dict[str, Any]) -> Dict[str, Any]:
        """to_dict / to_json / model_dump show credentials (an Authorization header) as [REDACTED]."""
        return masked(call_kwargs)

    _recorder: RouteRecorder = PrivateAttr()

    def __init__(self, router: Router, cost_weight: float | None = None, models: Sequence[str] | None = None,
                 call_kwargs: Dict[str, Any] | None = None, task: str | None = None, budget_key: str | None = None,
                 **kwargs: Any) -> None:
        if not isinstance(router, Router):
            raise ConfigError(f"router must be a bandit_router.Router, got {type(router).__name__}")
        litellm = {k: kwargs.pop(k) for k in list(kwargs) if k not in type(self).model_fields}  # temperature=...
        settings = {"cost_weight": cost_weight, "models": models, "task": task, "budget_key": budget_key,
                    "call_kwargs": {**litellm, **(call_kwargs or {})}}
        super().__init__(**_settings(router, settings), **kwargs)
        self._router = router
        self._recorder = _RECORDERS.setdefault(router, RouteRecorder())

    def __setattr__(self, name: str, value: Any) -> None:
        """Settings are checked when they change, as when the LLM is built."""
        changed = _settings(self.router, {name: value}) if name in _CHECKED else {name: value}
        for key, checked in changed.items():
            super().__setattr__(key, checked)

    def model_copy(self, *, update: Dict[str, Any] | None = None, deep: bool = False) -> BanditRouterLLM:
        """A copy over the same router and `record_routes` blocks (also when `deep`: the router is shared, not
        copied), keeping every LlamaIndex setting (system_prompt, rate_limiter, ...); `update` is checked."""
        return super().model_copy(update=_settings(self.router, update or {}))

    @classmethod
    def from_dict(cls, data: Dict[str, Any], **kwargs: Any) -> BanditRouterLLM:
        """The LLM `to_dict` described, over `router=` (a live Router, which `to_dict` leaves out); credentials
        it masked must be given again in `call_kwargs=`."""
        if not isinstance(kwargs.get("router"), Router):
            raise ConfigError("from_dict needs router=: a BanditRouterLLM routes through a live Router, which "
                              "to_dict does not hold (build it with Router.load(path) or as before)")
        data = {k: v for k, v in data.items() if k != "class_name"}
        return cls(**{**data, **kwargs})

    def __deepcopy__(self, memo: Dict[int, Any] | None = None) -> BanditRouterLLM:
        """A sibling sharing the router (a service handle, like an HTTP client: its locks, stores and log)."""
        return self.with_options()

    def __getstate__(self) -> Dict[str, Any]:
        raise TypeError("a BanditRouterLLM holds a live Router (locks, stores, its log) and cannot be pickled: save "
                        "the router with router.save(path) and build the LLM over Router.load(path)")

    def with_options(self, **options: Any) -> BanditRouterLLM:
        """A sibling over the same router (and the same `record_routes` blocks) with some of cost_weight, models,
        task, budget_key, call_kwargs, max_retries changed: a per-engine, per-agent or per-user dial or budget
        account without a second router. A task or budget key in the new `call_kwargs` replaces this LLM's."""
        if unknown := set(options) - set(_CHECKED):
            raise ConfigError(f"with_options takes {sorted(_CHECKED)}, got {sorted(unknown)}")
        return self.model_copy(update={"call_kwargs": self.call_kwargs, **options})

    @classmethod
    def class_name(cls) -> str:
        return "BanditRouterLLM"

    @property
    def router(self) -> Router:
        return self._router

    @property
    def metadata(self) -> LLMMetadata:
        """The smallest eligible context window, so prompts built for it fit whichever model is chosen; as the
        room kept for the answer, the call's max_tokens if set, else the router's expected output tokens (what
        LlamaIndex's prompt helpers subtract from the window, not a model's largest possible answer)."""
        cards = [card for name, card in self.router.models.items() if self.models is None or name in self.models]
        return LLMMetadata(
            context_window=min((c.context_window for c in cards if c.context_window), default=DEFAULT_CONTEXT_WINDOW),
            num_output=self.call_kwargs.get("max_tokens") or self.router.limits.expected_output_tokens,
            is_chat_model=True,
            is_function_calling_model=any(c.supports_tools for c in cards),
            model_name="bandit-router",
        )

    # -- feedback -------------------------------------------------------------------------------------------
    def feedback(self, route_id: str, score: float, **kwargs: Any) -> None:
        """Reward the model that answered `route_id` with `score` in [0, 1] (1 = best); kwargs go to
        `Router.feedback` (e.g. `token=` when the router signs feedback)."""
        self.router.feedback(route_id, score, **kwargs)

    def record_routes(self) -> ContextManager[List[Dict[str, Any]]]:
        """Collect the routing info of every call an LLM over this router (this one, a `with_options` sibling, or
        another built over the same router) serves inside the block, e.g. the calls one query engine makes for one
        question (which return only text), so they can be rated afterwards. A stream is recorded when it is first read (it is routed then), in the blocks open where it was
        asked for; its entry gains cost and token counts when it ends."""
        return self._recorder.record()

    def unrecorded(self) -> ContextManager[None]:
        """Inside, the calls of the LLMs over this router are left out of the open
        `record_routes()` blocks: a judge grading their answers is not graded with them."""
        return self._recorder.paused()

    # -- calls ----------------------------------------------------------------------------------------------
    def _route_kwargs(self, kwargs: Dict[str, Any]) -> Dict[str, Any]:
        """Router arguments: the dial, allowed models, task and budget key (per call, else this instance's) and
        LiteLLM kwargs."""
        check_call_kwargs({k: v for k, v in kwargs.items() if k not in ("cost_weight", "models")})
        kwargs = {"max_retries": self.max_retries, **self.call_kwargs, **kwargs}
        kwargs.setdefault("cost_weight", self.cost_weight)
        kwargs.setdefault("models", self.models)
        kwargs.setdefault("task", self.task)
        kwargs.setdefault("budget_key", self.budget_key)
        return kwargs

    def _routed(self, messages: Sequence[ChatMessage], kwargs: Dict[str, Any]) -> tuple[list[dict], Dict[str, Any]]:
        """OpenAI messages and Router arguments (the router sends image prompts only to vision models)."""
        return to_openai(messages), self._route_kwargs(kwargs)

    def _response(self, completion: Completion) -> ChatResponse:
        info = self._recorder.add(routing_info(completion.decision, completion.cost, dict(completion.usage)))
        return ChatResponse(message=from_openai(completion.response.choices[0].message, info),
                            raw=_tagged(completion.response, info), additional_kwargs=info)

    @staticmethod
    def _chunk(info: dict[str, Any], message: StreamedMessage, chunk: Any) -> ChatResponse | None:
        delta = message.add(chunk)
        if delta is None:
            return None
        return ChatResponse(message=message.message(info), delta=delta, raw=_tagged(chunk, info),
                            additional_kwargs=dict(info))

    @staticmethod
    def _last(stream: RoutedStream | AsyncRoutedStream, info: dict[str, Any], message: StreamedMessage,
              chunk: Any) -> ChatResponse:
        """The closing response of a stream: the whole message, its cost and token counts (also written into
        the `info` recorded when the stream started)."""
        _settled(stream, info)
        return ChatResponse(message=message.message(info), delta="", raw=_tagged(chunk, info),
                            additional_kwargs=dict(info))

    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        openai, routed = self._routed(messages, kwargs)
        return self._response(self.router.complete(openai, **routed))

    async def _achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        openai, routed = self._routed(messages, kwargs)
        return self._response(await self.router.acomplete(openai, **routed))

    def _stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """A stream routed when it is first read, as LlamaIndex's own LLMs send their request then: one never read
        holds no budget and leaves no decision; one closed part-way is charged its worst case, as a core stream is.
        Its route is recorded in the `record_routes()` blocks open where it was asked for."""
        openai, routed = self._routed(messages, kwargs)
        asked = copy_context()  # the record_routes() blocks open now

        def gen() -> ChatResponseGen:
            stream = self.router.stream(openai, **routed)
            info: dict[str, Any] = {}
            try:
                with stream:
                    info = asked.run(self._recorder.add, routing_info(stream.decision))
                    message, chunk = StreamedMessage(), None
                    for chunk in stream:
                        info.update(routing_info(stream.decision))  # the model serving it, after any fallback
                        if (response := self._chunk(info, message, chunk)) is not None:
                            yield response
                    yield self._last(stream, info, message, chunk)
            finally:  # also closed part-way: its entry gains what it was charged
                _settled(stream, info)

        return gen()

    async def _astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        """Async `_stream_chat`; the prompt is encoded off the event loop when the stream is first read."""
        openai, routed = self._routed(messages, kwargs)
        asked = copy_context()  # the record_routes() blocks open now

        async def gen() -> ChatResponseAsyncGen:
            await self.router.context.prefetch(openai, self.router.limits.max_prompt_chars)
            stream = self.router.astream(openai, **routed)
            info: dict[str, Any] = {}
            try:
                async with stream:
                    info = asked.run(self._recorder.add, routing_info(stream.decision))
                    message, chunk = StreamedMessage(), None
                    async for chunk in stream:
                        info.update(routing_info(stream.decision))
                        if (response := self._chunk(info, message, chunk)) is not None:
                            yield response
                    yield self._last(stream, info, message, chunk)
            finally:
                _settled(stream, info)

        return gen()

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._chat(messages, **kwargs)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return await self._achat(messages, **kwargs)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        return self._stream_chat(messages, **kwargs)

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        return await self._astream_chat(messages, **kwargs)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return chat_to_completion_decorator(self._chat)(_prompt(prompt), **kwargs)

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return await achat_to_completion_decorator(self._achat)(_prompt(prompt), **kwargs)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        return stream_chat_to_completion_decorator(self._stream_chat)(_prompt(prompt), **kwargs)

    @llm_completion_callback()
    async def astream_complete(self, prompt: str, formatted: bool = False,
                               **kwargs: Any) -> CompletionResponseAsyncGen:
        return await astream_chat_to_completion_decorator(self._astream_chat)(_prompt(prompt), **kwargs)

    # -- tool calling ---------------------------------------------------------------------------------------
    def _prepare_chat_with_tools(self, tools: Sequence[BaseTool], user_msg: Union[str, ChatMessage, None] = None,
                                 chat_history: Optional[List[ChatMessage]] = None, verbose: bool = False,
                                 allow_parallel_tool_calls: bool = False, tool_required: bool = False,
                                 **kwargs: Any) -> Dict[str, Any]:
        """Chat arguments with the tools as OpenAI function specs; `tool_choice` may also name one tool."""
        messages = list(chat_history or [])
        if user_msg is not None:
            messages.append(ChatMessage(role=MessageRole.USER, content=user_msg) if isinstance(user_msg, str)
                            else user_msg)
        choice = kwargs.pop("tool_choice", None) or ("required" if tool_required else "auto")
        if isinstance(choice, str) and choice not in _TOOL_CHOICES:
            choice = {"type": "function", "function": {"name": choice}}
        specs = [tool.metadata.to_openai_tool(skip_length_check=True) for tool in tools]
        return {"messages": messages, **({"tools": specs, "tool_choice": choice} if specs else {}), **kwargs}

    def _validate_chat_with_tools_response(self, response: ChatResponse, tools: Sequence[BaseTool],
                                           allow_parallel_tool_calls: bool = False, **kwargs: Any) -> ChatResponse:
        """Keep only the first tool call unless parallel calls are allowed (not every provider takes the flag),
        in the blocks and in their OpenAI mirror, additional_kwargs["tool_calls"]."""
        if not allow_parallel_tool_calls:
            calls = [b for b in response.message.blocks if isinstance(b, ToolCallBlock)]
            for extra in calls[1:]:
                response.message.blocks.remove(extra)
            mirror = response.message.additional_kwargs.get("tool_calls")
            if mirror:
                response.message.additional_kwargs["tool_calls"] = mirror[:1]
        return response

    def get_tool_calls_from_response(self, response: ChatResponse, error_on_no_tool_call: bool = True,
                                     **kwargs: Any) -> List[ToolSelection]:
        """The tool calls in a (possibly partial, streamed) response."""
        calls = [b for b in response.message.blocks if isinstance(b, ToolCallBlock)]
        if not calls and error_on_no_tool_call:
            raise ValueError("expected at least one tool call in the response, got none")
        return [ToolSelection(tool_id=c.tool_call_id or c.tool_name, tool_name=c.tool_name,
                              tool_kwargs=c.tool_kwargs if isinstance(c.tool_kwargs, dict) else {})
                for c in calls]

"""OpenAI's chat-completions schema on the service's side: request parsing, response and chunk bodies, and
errors in OpenAI's JSON shape ({"error": {"message", "type", "param", "code"}})."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from ..decision import messages_of
from ..errors import (AllModelsFailedError, BudgetExceededError, ConfigError, DuplicateFeedbackError,
                      FeedbackLimitError, InvalidFeedbackTokenError, InvalidPromptError, NoEligibleModelError,
                      StoreUnavailableError, UnknownRouteError)
from ..feedback import check_call_kwargs
from ..redaction import MIN_LENGTH, redact_keys

__all__ = ["APIError", "ChatRequest", "parse_chat", "parse_feedback", "api_error", "stream_broken", "endpoints",
           "public", "completion_body", "chunk_body", "stream_chunk", "finish_choices", "usage_details", "usage_chunk",
           "with_usage", "model_object", "ROUTER_MODEL", "STORE_UNAVAILABLE"]

ROUTER_MODEL = "router"
_OBJECT = re.compile(r"<[^<>]* object at 0x[0-9a-fA-F]+>")  # a Python object's repr, with its memory address
STORE_UNAVAILABLE = "the state store is unavailable; retry later"  # what a tenant is told of a store's failure
_NO_RETRY = {"x-should-retry": "false"}  # OpenAI's SDKs do not retry an answer with this header
# OpenAI request fields passed through to the chosen model
_PASSED = {"temperature", "top_p", "n", "stop", "max_tokens", "max_completion_tokens", "presence_penalty",
           "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "user", "seed", "tools", "tool_choice",
           "parallel_tool_calls", "response_format", "reasoning_effort", "modalities", "prediction", "audio",
           "service_tier"}
# fields the service reads itself (the last three are this router's extensions)
_OWN = {"model", "messages", "stream", "stream_options", "metadata", "store", "cost_weight", "task", "models"}
# the token details of OpenAI's usage object, passed on when the upstream gives them
_DETAILS = {"prompt_tokens_details": ("cached_tokens", "audio_tokens"),
            "completion_tokens_details": ("reasoning_tokens", "audio_tokens", "accepted_prediction_tokens",
                                          "rejected_prediction_tokens")}


class APIError(Exception):
    """An error answered in OpenAI's shape with HTTP `status`."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
        self.headers = dict(headers or {})


def endpoints(api_bases: Iterable[str | None]) -> tuple[str, ...]:
    """The texts that name the models' own endpoints in an error (each URL, its host:port and its host), longest
    first: a tenant is not shown where the service's models run."""
    texts = set()
    for url in filter(None, api_bases):
        parts = urlsplit(url)
        texts |= {url.rstrip("/"), parts.netloc.rpartition("@")[2], parts.hostname or ""}
    return tuple(sorted((t for t in texts if len(t) >= MIN_LENGTH), key=len, reverse=True))


def public(text: str, private: Sequence[str] = ()) -> str:
    """An error's text as a tenant may see it: the upstream keys [REDACTED] (nothing else `redact` masks: the prompts
    of requests in flight would tell a tenant which lines other tenants' prompts hold), the `private` endpoints
    (see `endpoints`) and Python's object addresses left out."""
    text = redact_keys(text)
    for endpoint in private:
        text = text.replace(endpoint, "[endpoint]")
    return _OBJECT.sub("<object>", text)


def api_error(error: BaseException, private: Sequence[str] = (), sent: Mapping[str, Any] | None = None) -> APIError:
    """The APIError for a library or provider exception. Its message is the real cause as `public` shows it (keys
    and the `private` endpoints masked), its `param` the field it names (max_completion_tokens for max_tokens when
    the request's fields `sent` set only that one). A state store's failure gets STORE_UNAVAILABLE instead of its
    message, which names the store's file or server (the service logs it)."""
    if isinstance(error, APIError):
        return error
    if isinstance(error, StoreUnavailableError):
        return APIError(503, STORE_UNAVAILABLE, "server_error", "store_unavailable")
    if isinstance(error, AllModelsFailedError):  # its own message masks the prompts in flight when it was raised
        causes = "; ".join(f"{model}: {type(cause).__name__}: {public(str(cause), private)[:300]}"
                           for model, cause in error.failures.items())
        return APIError(502, f"no model could serve the request after {len(error.failures)} attempt(s): {causes}",
                        "server_error", "upstream_failed", headers=_NO_RETRY)  # a retry re-runs every fallback
    message = public(str(error), private)
    if isinstance(error, BudgetExceededError):  # retrying cannot help: tell OpenAI's SDKs not to
        return APIError(429, message, "insufficient_quota", "budget_exceeded", headers=_NO_RETRY)
    if isinstance(error, FeedbackLimitError):  # named as the service's config names it
        return APIError(429, f"this tenant's ratings are at their limit: feedback.limit_per_tenant allows "
                             f"{error.limit} per {error.window:g} s", "rate_limit_exceeded", "feedback_limit")
    table: list[tuple[type, int, str, str | None]] = [  # error, status, code, param (None: the field named first)
        (NoEligibleModelError, 400, "no_eligible_model", None),
        (InvalidPromptError, 400, "invalid_prompt", None),
        (ConfigError, 400, "invalid_value", None),
        (UnknownRouteError, 404, "unknown_route", "route_id"),
        (DuplicateFeedbackError, 409, "duplicate_feedback", "route_id"),
        (InvalidFeedbackTokenError, 403, "invalid_feedback_token", "feedback_token"),
    ]
    for kind, status, code, param in table:
        if isinstance(error, kind):
            if param is None:
                message, param = _named_field(message, sent or {})
            return APIError(status, message, "invalid_request_error", code, param=param)
    status = getattr(error, "status_code", None)
    if isinstance(status, int) and 400 <= status < 600:  # a provider's own refusal (e.g. a bad tool schema)
        return APIError(status, f"upstream model refused the request: {type(error).__name__}: {message}",
                        "upstream_error", "upstream_error")
    return APIError(500, f"internal error: {type(error).__name__}", "server_error", "internal_error")


def _named_field(message: str, sent: Mapping[str, Any]) -> tuple[str, str | None]:
    """A library error's message and the request field it names first (the library's errors start with it; None
    when it names none). The library calls the output limit max_tokens: a request that set max_completion_tokens
    instead is told that name."""
    field = re.split(r"[ =]", message, maxsplit=1)[0]  # "max_tokens=5 is more than ..." names max_tokens
    if field not in _PASSED and "max_tokens=" in message:  # "... 12 prompt tokens + max_tokens=5 ..." too
        field = "max_tokens"
    if field == "max_tokens" and sent.get("max_tokens") is None and sent.get("max_completion_tokens") is not None:
        field = "max_completion_tokens"
        message = message.replace("max_tokens=", "max_completion_tokens=")
    return message, field if field in _PASSED | {"models", "task", "cost_weight", "score"} else None


def stream_broken(error: BaseException, sent: int, private: Sequence[str] = ()) -> APIError:
    """The error event of a stream that broke after `sent` chunks (a provider's message is shown as `public` shows
    it, never ours)."""
    cause = type(error).__name__
    if isinstance(getattr(error, "status_code", None), int):
        cause = f"{cause}: {public(str(error), private)}"
    return APIError(502, f"the upstream stream broke after {sent} chunks: {cause}", "server_error",
                    "upstream_stream_broken")


@dataclass
class ChatRequest:
    """A parsed chat-completions request."""

    messages: list[dict[str, Any]]
    stream: bool
    cost_weight: float | None
    task: str | None
    models: list[str] | None
    params: dict[str, Any] = field(default_factory=dict)
    include_usage: bool = False  # stream_options.include_usage: the usage comes in a last chunk without choices


def _dial(model: Any) -> float | None:
    if model is None:
        raise APIError(400, f"model is required: {ROUTER_MODEL!r} or '{ROUTER_MODEL}:<cost weight in [0, 1]>'",
                       code="invalid_value", param="model")
    if not isinstance(model, str) or not (model == ROUTER_MODEL or model.startswith(ROUTER_MODEL + ":")):
        raise APIError(404, f"model must be {ROUTER_MODEL!r} or '{ROUTER_MODEL}:<cost weight in [0, 1]>' "
                            f"(e.g. '{ROUTER_MODEL}:0.3'), got {model!r}", code="model_not_found", param="model")
    if model == ROUTER_MODEL:
        return None
    text = model.split(":", 1)[1]
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise APIError(400, f"model {model!r}: the cost weight after ':' must be a number in [0, 1]",
                       code="invalid_value", param="model")
    return value


def _check_size(messages: list[dict[str, Any]], limit: int) -> None:
    """APIError(400) when `messages` holds more than `limit` messages, content parts and tool calls in all: the
    upstream SDK transforms each one on the event loop (about 0.15 ms apiece), so their number bounds the time one
    request holds up every other."""
    nested = sum(len(value) for m in messages for value in (m.get("content"), m.get("tool_calls"))
                 if isinstance(value, list))
    if len(messages) + nested > limit:
        held = f" with {nested} content parts and tool calls, {len(messages) + nested} in all" if nested else ""
        raise APIError(400, f"messages has {len(messages)} messages{held}; server.max_messages allows {limit} (a "
                            "content part or a tool call counts as a message)", code="invalid_value",
                       param="messages")


def parse_chat(body: Any, max_messages: int) -> ChatRequest:
    """A ChatRequest from a request body; APIError(400) naming the field on anything invalid (more than
    `max_messages` messages, content parts and tool calls too)."""
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object", code="invalid_json")
    unknown = sorted(set(body) - _PASSED - _OWN)
    if unknown:
        raise APIError(400, f"unrecognized request argument(s): {unknown}", code="unknown_parameter",
                       param=unknown[0])
    dial = _dial(body.get("model"))
    if body.get("cost_weight") is not None:
        dial = body["cost_weight"]
        if isinstance(dial, bool) or not isinstance(dial, (int, float)) or not 0.0 <= dial <= 1.0:
            raise APIError(400, f"cost_weight must be a number in [0, 1], got {dial!r}", code="invalid_value",
                           param="cost_weight")
    messages = body.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise APIError(400, "messages must be a non-empty array of message objects with a 'role'",
                       code="invalid_value", param="messages")
    _check_size(messages, max_messages)
    try:
        messages_of(messages)
    except InvalidPromptError as error:
        raise APIError(400, str(error), code="invalid_value", param=str(error).split(" ", 1)[0]) from None
    models = body.get("models")
    if models is not None and (not isinstance(models, list) or not models
                               or not all(isinstance(m, str) for m in models)):
        raise APIError(400, "models must be a non-empty array of model names", code="invalid_value", param="models")
    task = body.get("task")
    if task is not None and not isinstance(task, str):
        raise APIError(400, "task must be a string naming one of the router's tasks", code="invalid_value",
                       param="task")
    stream = False if body.get("stream") is None else body["stream"]  # null is false, as OpenAI's schema has it
    if not isinstance(stream, bool):
        raise APIError(400, "stream must be true or false", code="invalid_value", param="stream")
    params = {k: v for k, v in body.items() if k in _PASSED}
    try:
        check_call_kwargs(params)
    except ConfigError as error:
        raise APIError(400, str(error), code="invalid_value", param=str(error).split(" ", 1)[0]) from None
    return ChatRequest(messages, stream, None if dial is None else float(dial), task, models, params,
                       _include_usage(body.get("stream_options"), stream))


def _include_usage(options: Any, stream: bool) -> bool:
    """stream_options.include_usage (as OpenAI: stream_options only with stream true)."""
    if options is None:
        return False
    if not stream:
        raise APIError(400, "stream_options is only allowed when stream is true", code="invalid_value",
                       param="stream_options")
    if not isinstance(options, dict):
        raise APIError(400, "stream_options must be an object: {\"include_usage\": true|false}",
                       code="invalid_value", param="stream_options")
    unknown = sorted(set(options) - {"include_usage"})
    if unknown:
        raise APIError(400, f"unrecognized stream_options field(s) {unknown}; allowed: include_usage",
                       code="unknown_parameter", param=f"stream_options.{unknown[0]}")
    include = options.get("include_usage", False)
    if not isinstance(include, bool):
        raise APIError(400, "stream_options.include_usage must be true or false", code="invalid_value",
                       param="stream_options.include_usage")
    return include


def parse_feedback(body: Any) -> tuple[str, Any, str | None]:
    """(route_id, score, feedback_token) of a /v1/feedback body; the score is checked by the router."""
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object", code="invalid_json")
    unknown = sorted(set(body) - {"route_id", "score", "feedback_token"})
    if unknown:
        raise APIError(400, f"unrecognized feedback field(s) {unknown}; allowed: route_id, score, feedback_token",
                       code="unknown_parameter", param=unknown[0])
    route_id, token = body.get("route_id"), body.get("feedback_token")
    if not isinstance(route_id, str) or not route_id:
        raise APIError(400, "route_id must be the id of a chat completion this service answered",
                       code="invalid_value", param="route_id")
    if "score" not in body:
        raise APIError(400, "score is required: a number in [0, 1] (1 = best answer)", code="invalid_value",
                       param="score")
    if token is not None and not isinstance(token, str):
        raise APIError(400, "feedback_token must be a string", code="invalid_value", param="feedback_token")
    return route_id, body["score"], token


def usage_details(usage: Any) -> dict[str, dict[str, int]]:
    """The token details (cached, reasoning, ... tokens) of a LiteLLM usage object or dict, in OpenAI's shape:
    only the fields OpenAI defines that the upstream gave ({} for none)."""
    usage = usage.model_dump() if hasattr(usage, "model_dump") else usage or {}
    details = {}
    for name, keys in _DETAILS.items():
        given = usage.get(name) or {}
        kept = {key: int(given[key]) for key in keys if isinstance(given.get(key), int)}
        if kept:
            details[name] = kept
    return details


def _usage(usage: Mapping[str, int], details: Mapping[str, Any]) -> dict[str, Any]:
    counts = {k: int(usage.get(k, 0)) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    return {**counts, **details}


def _clean(value: Any) -> Any:
    """A LiteLLM-dumped message or delta without LiteLLM's extra fields and None values."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None and k != "provider_specific_fields"}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _fingerprint(dumped: Mapping[str, Any]) -> dict[str, Any]:
    """The upstream's system_fingerprint, as a field to add (none when it gave none)."""
    return {"system_fingerprint": dumped["system_fingerprint"]} if dumped.get("system_fingerprint") else {}


def completion_body(response: Any, route_id: str, model: str, usage: Mapping[str, int],
                    extension: Mapping[str, Any]) -> dict[str, Any]:
    """A chat.completion object: id = route_id, model = the model that answered, plus the `bandit_router` field."""
    dumped = response.model_dump()
    choices = [{"index": c.get("index", i), "message": {"role": "assistant", "content": None, **_clean(c["message"])},
                "logprobs": c.get("logprobs"), "finish_reason": c.get("finish_reason")}
               for i, c in enumerate(dumped.get("choices") or [])]
    return {"id": route_id, "object": "chat.completion", "created": dumped.get("created"), "model": model,
            **_fingerprint(dumped), "choices": choices, "usage": _usage(usage, usage_details(dumped.get("usage"))),
            "bandit_router": dict(extension)}


def stream_chunk(route_id: str, model: str, created: int | None, choices: list[dict[str, Any]],
                 include_usage: bool) -> dict[str, Any]:
    """A chat.completion.chunk; with `include_usage`, `"usage": null` as OpenAI sends before the usage chunk."""
    body = {"id": route_id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": choices}
    return {**body, "usage": None} if include_usage else body


def chunk_body(chunk: Any, route_id: str, model: str, include_usage: bool = False) -> dict[str, Any] | None:
    """A chat.completion.chunk for a LiteLLM chunk; None for one that carries usage (the service sends the usage
    last) or nothing for a client: no choice with a delta, logprobs or a finish_reason (e.g. Azure's first chunk,
    with `"choices": []` and only prompt_filter_results)."""
    dumped = chunk.model_dump()
    choices = [{"index": c.get("index", i), "delta": _clean(c.get("delta") or {}), "logprobs": c.get("logprobs"),
                "finish_reason": c.get("finish_reason")} for i, c in enumerate(dumped.get("choices") or [])]
    if dumped.get("usage") or not any(c["delta"] or c["logprobs"] or c["finish_reason"] for c in choices):
        return None
    body = stream_chunk(route_id, model, dumped.get("created"), choices, include_usage)
    return {**body, **_fingerprint(dumped)}


def finish_choices(indexes: Iterable[int], reason: str) -> list[dict[str, Any]]:
    """Chunk choices that only end the choices `indexes` with finish_reason `reason`."""
    return [{"index": i, "delta": {}, "logprobs": None, "finish_reason": reason} for i in indexes]


def usage_chunk(route_id: str, model: str, created: int, usage: Mapping[str, int], details: Mapping[str, Any],
                extension: Mapping[str, Any]) -> dict[str, Any]:
    """The last chunk of a stream asked with include_usage: no choices, the usage (with the upstream's token
    `details`), and the `bandit_router` field."""
    return {"id": route_id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [],
            "usage": _usage(usage, details), "bandit_router": dict(extension)}


def with_usage(body: Mapping[str, Any], usage: Mapping[str, int], details: Mapping[str, Any],
               extension: Mapping[str, Any]) -> dict[str, Any]:
    """A stream's last chunk with choices, carrying the usage (with the upstream's token `details`) and the
    `bandit_router` field."""
    return {**body, "usage": _usage(usage, details), "bandit_router": dict(extension)}


def model_object(model_id: str, models: list[str]) -> dict[str, Any]:
    """The model object of `router` or `router:<dial>` (OpenAI's model retrieve); 404 for any other id."""
    try:
        _dial(model_id)
    except APIError:
        raise APIError(404, f"the model {model_id!r} does not exist: this service serves {ROUTER_MODEL!r} and "
                            f"'{ROUTER_MODEL}:<cost weight in [0, 1]>'", code="model_not_found",
                       param="model") from None
    return {"id": model_id, "object": "model", "created": 0, "owned_by": "bandit-router", "models": models}

"""Offline OpenAI-compatible chat-completions server for tests and examples.

Stdlib only. Start it on 127.0.0.1 (port 0 picks a free port) and point any
OpenAI client, e.g. LiteLLM's ``openai/<name>`` provider, at ``base_url``::

    with FakeLLMServer({"model-a": ModelBehavior(), "model-b": ModelBehavior(delay=2)}) as server:
        litellm.completion(model="openai/model-a", api_base=server.base_url,
                           api_key="sk-test", messages=[{"role": "user", "content": "hi"}])
        server.set_behavior("model-a", fail_status=500, fail_times=1)

Token accounting: prompt tokens = whitespace words in all message contents,
completion tokens = words in the answer (or in the tool-call arguments JSON).
Tool-call arguments follow the tool's schema: numbers are the prompt's first
number, strings its first quoted phrase (else "example").

Exceptions raised by LiteLLM 1.106 (``openai/`` provider, ``num_retries=0``,
``max_retries=0``) for the simulated failures:

* 500 ``server_error``                      -> ``litellm.InternalServerError``
* 429 ``rate_limit_exceeded``               -> ``litellm.RateLimitError``
* 400 ``context_length_exceeded``           -> ``litellm.ContextWindowExceededError``
* 404 unknown model (``model_not_found``)   -> ``litellm.NotFoundError``
* 401 / 503                                 -> ``litellm.AuthenticationError`` / ``litellm.ServiceUnavailableError``
* 403                                       -> ``litellm.APIError`` (status_code 403)
* 422 (a request the provider finds invalid) -> ``litellm.BadRequestError``
* ``delay`` longer than the client timeout  -> ``litellm.Timeout``

LiteLLM 1.106 imports the optional ``mcp`` package whenever ``tools`` are
passed; without it, add ``_skip_mcp_handler=True`` to the call.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeLLMServer", "ModelBehavior", "RecordedRequest", "echo", "example_from_schema", "grade",
           "last_user_text", "message_text"]

Message = dict[str, Any]
Responder = Callable[[list[Message]], str]

_COMPLETION_PATHS = ("/v1/chat/completions", "/chat/completions")
_MODEL_PATHS = ("/v1/models", "/models")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_QUOTED = re.compile(r"(?<!\w)'([^']+)'(?!\w)|\"([^\"]+)\"")
_IDS = itertools.count(1)  # completion and tool-call ids
# status -> (type, code, message), as the OpenAI API sends them
_FAILURES: dict[int, tuple[str, str, str]] = {
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "model_not_allowed", "This key is not allowed to use this model."),
    422: ("invalid_request_error", "invalid_value", "Invalid value for a request field."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
    500: ("server_error", "server_error", "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", "service_unavailable", "The server is overloaded or not ready yet."),
}


def message_text(message: Message) -> str:
    """Text of a message whose content is a string or a list of content parts."""
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def last_user_text(messages: list[Message]) -> str:
    """Text of the last user message ("" if there is none)."""
    return next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")


def echo(messages: list[Message]) -> str:
    """Default responder: quotes the tool result, or echoes the last user message."""
    if messages and messages[-1].get("role") == "tool":
        return f"Tool result: {message_text(messages[-1])}"
    return f"Echo: {last_user_text(messages)}"


def _words(text: str) -> int:
    return len(text.split())


def _first_quoted(text: str) -> str | None:
    """The first 'single-' or "double-quoted" phrase of ``text`` (None if there is none)."""
    match = _QUOTED.search(text)
    return None if match is None else match.group(1) or match.group(2)


def _first_number(text: str) -> int | float | None:
    match = _NUMBER.search(text)
    if match is None:
        return None
    value = float(match.group())
    return int(value) if value.is_integer() else value


@dataclass(frozen=True)
class ModelBehavior:
    """How one fake model answers.

    ``fail_status``: HTTP status returned instead of an answer (400 means
    context length exceeded). ``fail_times``: fail only the next N calls (it
    counts down to 0); ``None`` fails every call. ``delay``: seconds to wait
    before answering. ``context_window``: prompts with more tokens get a 400
    ``context_length_exceeded``. ``rejects``: request parameters the model
    refuses with a 400 ``unsupported_parameter``, as OpenAI's o-series refuse
    ``temperature``. ``retry_after``: seconds sent in a ``Retry-After`` header
    with each failure (as a provider's 429 says when to come back).
    """

    respond: Responder = echo
    fail_status: int | None = None
    fail_times: int | None = None
    delay: float = 0.0
    context_window: int | None = None
    rejects: tuple[str, ...] = ()
    retry_after: float | None = None


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received; ``params`` holds every other body field."""

    path: str
    model: str
    messages: list[Message]
    params: dict[str, Any]


class _APIError(Exception):
    """An OpenAI-style error response."""

    def __init__(self, status: int, message: str, type_: str, code: str, param: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
        self.headers = headers or {}


def _context_error(prompt_tokens: int, window: int | None) -> _APIError:
    limit = window if window is not None else max(prompt_tokens - 1, 0)
    message = (
        f"This model's maximum context length is {limit} tokens. However, your messages resulted in "
        f"{prompt_tokens} tokens. Please reduce the length of the messages."
    )
    return _APIError(400, message, "invalid_request_error", "context_length_exceeded", "messages")


def _failure(status: int, retry_after: float | None = None) -> _APIError:
    type_, code, message = _FAILURES.get(status, ("server_error", f"http_{status}", f"Simulated HTTP {status} error."))
    return _APIError(status, message, type_, code, headers=None if retry_after is None else {
        "Retry-After": f"{retry_after:g}"})


# ---------------------------------------------------------------- JSON schema


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return node if isinstance(node, dict) else {}


def example_from_schema(schema: dict[str, Any], number: int | float | None = None, text: str = "example") -> Any:
    """Build a small value matching a JSON schema (``$ref``/``$defs``/``anyOf`` aware).

    Objects get their required properties (all if none is required); numbers
    are ``number`` if given, else 1; strings the first ``enum`` value or ``text``.
    """
    return _example(schema, number, schema, frozenset(), text)


def _example(schema: dict[str, Any], number: int | float | None, root: dict[str, Any], seen: frozenset[str],
             text: str) -> Any:
    """``example_from_schema`` helper; ``seen`` holds the ``$ref``s being expanded (breaks cycles)."""
    if "$ref" in schema:
        ref = schema["$ref"]
        return None if ref in seen else _example(_resolve(ref, root), number, root, seen | {ref}, text)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            options = [o for o in schema[key] if o.get("type") != "null" and o.get("$ref") not in seen]
            return _example(options[0], number, root, seen, text) if options else None
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        names = schema.get("required") or props
        return {name: _example(props.get(name, {}), number, root, seen, text) for name in names}
    if kind == "array":
        items = schema.get("items")
        expandable = isinstance(items, dict) and items.get("$ref") not in seen
        return [_example(items, number, root, seen, text)] if expandable else []
    if kind in ("integer", "number"):
        value = 1 if number is None else number
        return int(value) if kind == "integer" else value
    return {"boolean": True, "null": None}.get(kind, text)


def _json_answer(response_format: dict[str, Any], text: str, number: int | float | None) -> str:
    """Answer for ``response_format``: a JSON-object ``text`` passes through, else one is generated."""
    try:
        if isinstance(json.loads(text), dict):
            return text
    except ValueError:
        pass
    if response_format.get("type") == "json_schema":
        schema = response_format.get("json_schema", {}).get("schema", {})
        return json.dumps(example_from_schema(schema, number))
    return json.dumps({"answer": text})


# ---------------------------------------------------------------- answers


def _chosen_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    """The tool the fake model calls: the one tool_choice names, else the first; after a tool's result none (it
    answers in text) unless tool_choice forces a call: then the first tool not called yet in the conversation, else
    the last (so an agent whose final answer is a tool, as LangChain's structured output, gets it)."""
    tools, choice, messages = body.get("tools") or [], body.get("tool_choice"), body.get("messages") or []
    name = lambda tool: tool.get("function", {}).get("name")  # noqa: E731
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        return next((t for t in tools if name(t) == choice.get("function", {}).get("name")), tools[0])
    if messages and messages[-1].get("role") == "tool":
        if choice != "required":
            return None
        called = {c.get("function", {}).get("name") for m in messages for c in m.get("tool_calls") or ()}
        return next((t for t in tools if name(t) not in called), tools[-1])
    return tools[0]


def _truncate(text: str, stop: str | list[str] | None, max_tokens: int | None) -> tuple[str, str]:
    """Cut ``text`` at the first stop string, then to ``max_tokens`` words; returns (text, finish_reason)."""
    stops = [stop] if isinstance(stop, str) else stop or []
    cuts = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    text = text[: min(cuts)] if cuts else text
    words = list(re.finditer(r"\S+", text))
    if max_tokens is not None and len(words) > max_tokens:
        return text[: words[max_tokens - 1].end() if max_tokens > 0 else 0], "length"
    return text, "stop"


def _pieces(text: str) -> list[str]:
    """Word-sized fragments that concatenate back to ``text``."""
    return [p for p in re.split(r"(?<=\S)(?=\s)", text) if p]


def _chunks(completion: dict[str, Any], include_usage: bool) -> Iterator[dict[str, Any]]:
    """OpenAI ``chat.completion.chunk`` objects equivalent to ``completion``."""
    base = {k: completion[k] for k in ("id", "created", "model", "system_fingerprint")}
    base["object"] = "chat.completion.chunk"
    extra = {"usage": None} if include_usage else {}
    message, finish_reason = completion["choices"][0]["message"], completion["choices"][0]["finish_reason"]

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**base, "choices": [choice], **extra}

    if message.get("tool_calls"):
        yield chunk({"role": "assistant", "content": None})
        for index, call in enumerate(message["tool_calls"]):
            head = {"index": index, "id": call["id"], "type": "function"}
            yield chunk({"tool_calls": [{**head, "function": {"name": call["function"]["name"], "arguments": ""}}]})
            for piece in _pieces(call["function"]["arguments"]):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    else:
        yield chunk({"role": "assistant", "content": "", "refusal": None})
        for piece in _pieces(message["content"]):
            yield chunk({"content": piece})
    yield chunk({}, finish_reason)
    if include_usage:
        yield {**base, "choices": [], "usage": completion["usage"]}


def _answer(body: dict[str, Any], respond: Responder) -> tuple[dict[str, Any], str, int]:
    """The assistant message for ``body``, its finish_reason and its completion tokens."""
    messages = body.get("messages") or []
    number = _first_number(last_user_text(messages))
    tool = _chosen_tool(body)
    if tool is not None:
        function = tool.get("function", {})
        quoted = _first_quoted(last_user_text(messages)) or "example"
        arguments = json.dumps(example_from_schema(function.get("parameters") or {}, number, quoted))
        call = {"id": f"call_{next(_IDS)}", "type": "function",
                "function": {"name": function.get("name", ""), "arguments": arguments}}
        message = {"role": "assistant", "content": None, "tool_calls": [call], "refusal": None}
        return message, "tool_calls", _words(arguments)
    text = respond(messages)
    response_format = body.get("response_format") or {}
    if response_format.get("type") in ("json_schema", "json_object"):
        text = _json_answer(response_format, text, number)
    text, finish_reason = _truncate(text, body.get("stop"), body.get("max_completion_tokens", body.get("max_tokens")))
    return {"role": "assistant", "content": text, "refusal": None}, finish_reason, _words(text)


def _completion(model: str, body: dict[str, Any], respond: Responder, prompt_tokens: int) -> dict[str, Any]:
    """A ``chat.completion`` object answering ``body``."""
    message, finish_reason, completion_tokens = _answer(body, respond)
    return {
        "id": f"chatcmpl-{next(_IDS)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


# ---------------------------------------------------------------- HTTP


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default 5 resets connections under a few dozen concurrent clients

    def __init__(self, address: tuple[str, int], fake: FakeLLMServer):
        super().__init__(address, _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence per-request logging
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/") in _MODEL_PATHS:
            models = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.server.fake.models]
            self._send_json(200, {"object": "list", "data": models})
        else:
            self._send_json(404, self._invalid_url().body)

    def do_POST(self) -> None:
        try:
            if self.path.rstrip("/") not in _COMPLETION_PATHS:
                raise self._invalid_url()
            body = self._read_json()
            completion = self.server.fake.answer(self.path, body)
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                self._send_stream(_chunks(completion, include_usage))
            else:
                self._send_json(200, completion)
        except _APIError as error:
            self._send_json(error.status, error.body, error.headers)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. timed out) before the answer
        except Exception as exc:  # e.g. a failing ``respond``: report it to the client
            self._send_json(500, _APIError(500, f"FakeLLMServer error: {exc!r}", "server_error", "server_error").body)

    def _invalid_url(self) -> _APIError:
        return _APIError(404, f"Invalid URL ({self.command} {self.path})", "invalid_request_error", "unknown_url")

    def _read_json(self) -> dict[str, Any]:
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("the body is not a JSON object")
        except ValueError as exc:
            raise _APIError(400, f"Invalid JSON body: {exc}", "invalid_request_error", "invalid_json") from exc
        return body

    def _send_headers(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self._send_headers(status, {"Content-Type": "application/json", "Content-Length": str(len(data)),
                                    **(headers or {})})
        self.wfile.write(data)

    def _send_stream(self, chunks: Iterable[dict[str, Any]]) -> None:
        self._send_headers(200, {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        for chunk in chunks:
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")


class FakeLLMServer:
    """OpenAI-compatible chat-completions server with scriptable models.

    ``models`` maps model names to behaviours (plain names get the default
    behaviour). Use as a context manager, or call ``start()``/``stop()``.
    """

    def __init__(self, models: Mapping[str, ModelBehavior] | Iterable[str] = ("fake-model",),
                 host: str = "127.0.0.1", port: int = 0):
        items = models.items() if isinstance(models, Mapping) else ((name, ModelBehavior()) for name in models)
        self._behaviors: dict[str, ModelBehavior] = dict(items)
        self._address = (host, port)
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeLLMServer:
        """Bind and serve in a daemon thread; returns ``self``."""
        if self._httpd is None:
            self._stopping.clear()
            self._httpd = _HTTPServer(self._address, self)
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="FakeLLMServer", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake delayed requests and close the socket."""
        if self._httpd is not None and self._thread is not None:
            self._stopping.set()
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join()
            self._httpd = self._thread = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (server must be started)."""
        if self._httpd is None:
            raise RuntimeError("FakeLLMServer is not started")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """OpenAI-style base URL, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"http://{self._address[0]}:{self.port}/v1"

    @property
    def models(self) -> list[str]:
        """Names of the served models."""
        with self._lock:
            return list(self._behaviors)

    def behavior(self, model: str) -> ModelBehavior:
        """Current behaviour of ``model``."""
        with self._lock:
            return self._behaviors[model]

    def set_behavior(self, model: str, behavior: ModelBehavior | None = None, **changes: Any) -> ModelBehavior:
        """Replace or update (``**changes``) a model's behaviour, adding the model if new."""
        with self._lock:
            current = behavior or self._behaviors.get(model, ModelBehavior())
            self._behaviors[model] = replace(current, **changes)
            return self._behaviors[model]

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._requests.clear()

    def answer(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Record ``body`` and build its ``chat.completion`` (raises ``_APIError`` on failure)."""
        model, messages = str(body.get("model", "")), list(body.get("messages") or [])
        params = {k: v for k, v in body.items() if k not in ("model", "messages")}
        with self._lock:
            self._requests.append(RecordedRequest(path, model, messages, params))
            behavior = self._behaviors.get(model)
        if behavior is None:
            message = f"The model `{model}` does not exist or you do not have access to it."
            raise _APIError(404, message, "invalid_request_error", "model_not_found")
        if behavior.delay:
            self._stopping.wait(behavior.delay)
        prompt_tokens = sum(_words(message_text(m)) for m in messages)
        status = self._take_failure(model)
        window = behavior.context_window
        if status == 400 or (window is not None and prompt_tokens > window):
            raise _context_error(prompt_tokens, window)
        if status is not None:
            raise _failure(status, behavior.retry_after)
        if refused := [name for name in behavior.rejects if name in params]:
            raise _APIError(400, f"Unsupported parameter: '{refused[0]}' is not supported with this model.",
                            "invalid_request_error", "unsupported_parameter", refused[0])
        return _completion(model, body, behavior.respond, prompt_tokens)

    def _take_failure(self, model: str) -> int | None:
        """The status the next call to ``model`` must fail with, counting down ``fail_times``."""
        with self._lock:
            current = self._behaviors[model]
            if current.fail_status is None or current.fail_times == 0:
                return None
            if current.fail_times is not None:
                self._behaviors[model] = replace(current, fail_times=current.fail_times - 1)
            return current.fail_status


def grade(messages: list[Message]) -> str:
    """A fake judge's reply: a grade from 0 to 10, the same for the same request (a hash of its last message)."""
    digest = hashlib.blake2b(message_text(messages[-1]).encode("utf-8", "surrogatepass"), digest_size=2).digest()
    return str(int.from_bytes(digest, "little") % 11)


def main(argv: list[str] | None = None) -> None:
    """`python -m bandit_router.testing [--port N] [--judge NAME] [MODEL ...]`: serve echoing fake models (and a
    judge that replies with a grade) until interrupted, e.g. as the upstream of `bandit-router serve` or
    `bandit-router score-table` (model cards `openai/MODEL` with `api_base` the printed URL)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bandit_router.testing",
                                     description="An offline OpenAI-compatible server whose models echo the prompt.")
    parser.add_argument("models", nargs="*", default=["fake-model"], help="model names to serve (default fake-model)")
    parser.add_argument("--judge", action="append", default=[],
                        help="also serve a model of this name that answers with a grade from 0 to 10 (repeatable)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8001, help="port (default 8001; 0 picks a free one)")
    args = parser.parse_args(argv)
    behaviors = {**{name: ModelBehavior() for name in args.models},
                 **{name: ModelBehavior(respond=grade) for name in args.judge}}
    with FakeLLMServer(behaviors, host=args.host, port=args.port) as server:
        print(f"serving {', '.join(behaviors)} at {server.base_url} (Ctrl-C to stop)", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

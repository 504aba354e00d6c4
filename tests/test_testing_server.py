"""Tests for bandit_router.testing.FakeLLMServer, driven through real LiteLLM calls."""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import importlib.util
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any, Literal, Optional

import litellm
import pytest
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel

from bandit_router.feedback import LLMJudge
from bandit_router.models import Model
from bandit_router.testing import FakeLLMServer, ModelBehavior, example_from_schema, last_user_text

litellm.suppress_debug_info = True

# LiteLLM 1.106 imports the optional `mcp` package whenever `tools` are passed;
# its private `_skip_mcp_handler` flag skips that import when `mcp` is absent.
TOOL_KW: dict[str, Any] = {} if importlib.util.find_spec("mcp") else {"_skip_mcp_handler": True}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
                "detailed": {"type": "boolean"},
            },
            "required": ["city", "unit", "days", "detailed"],
        },
    },
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


def math_or_not(messages: list[dict[str, Any]]) -> str:
    """Right on math prompts only (the other model answers the inverse)."""
    return "4" if "2+2" in last_user_text(messages) else "I don't know"


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    models = {
        "echo": ModelBehavior(),
        "math": ModelBehavior(respond=math_or_not),
        "slow": ModelBehavior(delay=2.0),
    }
    with FakeLLMServer(models) as srv:
        yield srv


def call(server: FakeLLMServer, model: str, content: str, **kwargs: Any) -> Any:
    """One non-retrying LiteLLM call to ``model`` on ``server``."""
    return litellm.completion(
        model=f"openai/{model}",
        api_base=server.base_url,
        api_key="sk-test",
        messages=[{"role": "user", "content": content}],
        num_retries=0,
        max_retries=0,
        **kwargs,
    )


def http(server: FakeLLMServer, path: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
    """Raw stdlib request (GET without body, POST with it)."""
    data = None if body is None else json.dumps(body).encode()
    url = server.base_url.removesuffix("/v1") + path
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


# ---------------------------------------------------------------- basics


def test_base_url_and_models_endpoint(server: FakeLLMServer) -> None:
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    status, raw = http(server, "/v1/models")
    assert status == 200
    assert [m["id"] for m in json.loads(raw)["data"]] == ["echo", "math", "slow"]


def test_completion_content_usage_and_recorded_params(server: FakeLLMServer) -> None:
    response = call(server, "echo", "hello there world", temperature=0.2, max_tokens=50, stop=["zzz"])
    assert response.choices[0].message.content == "Echo: hello there world"
    assert response.choices[0].finish_reason == "stop"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens, response.usage.total_tokens) == (3, 4, 7)
    [recorded] = server.requests
    assert recorded.model == "echo"
    assert recorded.path == "/v1/chat/completions"
    assert recorded.messages == [{"role": "user", "content": "hello there world"}]
    assert recorded.params["temperature"] == 0.2
    assert recorded.params["max_tokens"] == 50
    assert recorded.params["stop"] == ["zzz"]
    server.clear_requests()
    assert server.requests == []


def test_path_without_v1_prefix(server: FakeLLMServer) -> None:
    body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
    status, raw = http(server, "/chat/completions", body)
    assert status == 200
    assert json.loads(raw)["choices"][0]["message"]["content"] == "Echo: hi"


async def test_acompletion(server: FakeLLMServer) -> None:
    response = await litellm.acompletion(
        model="openai/echo",
        api_base=server.base_url,
        api_key="sk-test",
        messages=[{"role": "user", "content": "async hello"}],
        num_retries=0,
        max_retries=0,
    )
    assert response.choices[0].message.content == "Echo: async hello"
    assert response.usage.prompt_tokens == 2


def test_respond_routes_by_prompt(server: FakeLLMServer) -> None:
    server.set_behavior("words", respond=lambda m: "I don't know" if "2+2" in last_user_text(m) else "Paris")
    assert call(server, "math", "What is 2+2?").choices[0].message.content == "4"
    assert call(server, "math", "Capital of France?").choices[0].message.content == "I don't know"
    assert call(server, "words", "What is 2+2?").choices[0].message.content == "I don't know"
    assert call(server, "words", "Capital of France?").choices[0].message.content == "Paris"


def test_stop_truncates_at_first_stop_string(server: FakeLLMServer) -> None:
    response = call(server, "echo", "one two. three", stop=[".", "three"])
    assert response.choices[0].message.content == "Echo: one two"
    assert response.choices[0].finish_reason == "stop"


def test_max_tokens_truncates_words(server: FakeLLMServer) -> None:
    response = call(server, "echo", "one two three four", max_tokens=3)
    assert response.choices[0].message.content == "Echo: one two"
    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens == 3


# ---------------------------------------------------------------- streaming


def test_stream_content_and_usage(server: FakeLLMServer) -> None:
    chunks = list(call(server, "echo", "stream me please", stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: stream me please"
    usage = next(c.usage for c in chunks if getattr(c, "usage", None))
    assert (usage.prompt_tokens, usage.completion_tokens) == (3, 4)
    assert litellm.stream_chunk_builder(chunks).choices[0].finish_reason == "stop"


def test_stream_wire_format(server: FakeLLMServer) -> None:
    body = {
        "model": "echo",
        "messages": [{"role": "user", "content": "a b"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    status, raw = http(server, "/v1/chat/completions", body)
    assert status == 200
    events = [line.removeprefix("data: ") for line in raw.decode().split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:-2]] == ["Echo:", " a", " b"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}


def test_stream_without_usage_option_has_no_usage_chunk(server: FakeLLMServer) -> None:
    body = {"model": "echo", "messages": [{"role": "user", "content": "a"}], "stream": True}
    _, raw = http(server, "/v1/chat/completions", body)
    chunks = [json.loads(e.removeprefix("data: ")) for e in raw.decode().split("\n\n")[:-2]]
    assert all(c["choices"] and "usage" not in c for c in chunks)


# ---------------------------------------------------------------- tools


def test_tool_call_args_from_schema(server: FakeLLMServer) -> None:
    response = call(server, "echo", "Weather for the next 5 days?", tools=[WEATHER_TOOL], **TOOL_KW)
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    [tool_call] = choice.message.tool_calls
    assert tool_call.id.startswith("call_")
    assert tool_call.function.name == "get_weather"
    args = json.loads(tool_call.function.arguments)
    assert args == {"city": "example", "unit": "celsius", "days": 5, "detailed": True}
    assert server.requests[-1].params["tools"] == [WEATHER_TOOL]


def test_langchain_magic_function_tool_call(server: FakeLLMServer) -> None:
    @tool
    def magic_function(input: int) -> int:
        """Applies a magic function to an input."""
        return input + 2

    prompt = "What is the value of magic_function(3)? Use the tool."
    response = call(server, "echo", prompt, tools=[convert_to_openai_tool(magic_function)], **TOOL_KW)
    [tool_call] = response.choices[0].message.tool_calls
    assert tool_call.function.name == "magic_function"
    assert json.loads(tool_call.function.arguments) == {"input": 3}


def test_tool_choice_names_tool_or_disables_tools(server: FakeLLMServer) -> None:
    chosen = {"type": "function", "function": {"name": "get_time"}}
    response = call(server, "echo", "hi", tools=[WEATHER_TOOL, TIME_TOOL], tool_choice=chosen, **TOOL_KW)
    [tool_call] = response.choices[0].message.tool_calls
    assert (tool_call.function.name, tool_call.function.arguments) == ("get_time", "{}")
    response = call(server, "echo", "hi", tools=[WEATHER_TOOL], tool_choice="none", **TOOL_KW)
    assert response.choices[0].message.content == "Echo: hi"
    assert not response.choices[0].message.tool_calls


def test_answer_after_tool_result_includes_it(server: FakeLLMServer) -> None:
    call_message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}],
    }
    response = litellm.completion(
        model="openai/echo",
        api_base=server.base_url,
        api_key="sk-test",
        messages=[
            {"role": "user", "content": "What time is it?"},
            call_message,
            {"role": "tool", "tool_call_id": "call_9", "content": "12:34"},
        ],
        tools=[TIME_TOOL],
        num_retries=0,
        max_retries=0,
        **TOOL_KW,
    )
    assert "12:34" in response.choices[0].message.content
    assert response.choices[0].finish_reason == "stop"
    messages = [{"role": "user", "content": "What time is it?"}, call_message,
                {"role": "tool", "tool_call_id": "call_9", "content": "12:34"}]
    forced = litellm.completion(model="openai/echo", api_base=server.base_url, api_key="sk-test", messages=messages,
                                tools=[TIME_TOOL, WEATHER_TOOL], tool_choice="required", num_retries=0,
                                max_retries=0, **TOOL_KW)  # a forced call after a result: a tool not called yet
    assert [c.function.name for c in forced.choices[0].message.tool_calls] == ["get_weather"]


def test_streamed_tool_call_reassembles(server: FakeLLMServer) -> None:
    stream = call(
        server, "echo", "Weather in 2 days?", tools=[WEATHER_TOOL], stream=True,
        stream_options={"include_usage": True}, **TOOL_KW,
    )
    chunks = list(stream)
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert len(deltas) > 2  # header plus several argument fragments
    assert deltas[0].function.name == "get_weather" and deltas[0].id.startswith("call_")
    arguments = "".join(d.function.arguments or "" for d in deltas)
    assert json.loads(arguments) == {"city": "example", "unit": "celsius", "days": 2, "detailed": True}
    rebuilt = litellm.stream_chunk_builder(chunks)
    assert rebuilt.choices[0].finish_reason == "tool_calls"
    assert json.loads(rebuilt.choices[0].message.tool_calls[0].function.arguments)["days"] == 2
    assert rebuilt.usage.completion_tokens > 0


# ---------------------------------------------------------------- structured output


class Address(BaseModel):
    city: str
    zip_code: Optional[int] = None


class Person(BaseModel):
    name: str
    kind: Literal["admin", "user"]
    age: int
    address: Address
    previous: list[Address]
    manager: Optional["Person"]


def test_example_from_pydantic_schema_with_refs_and_cycles() -> None:
    value = example_from_schema(Person.model_json_schema(), 42)
    assert value == {
        "name": "example",
        "kind": "admin",
        "age": 42,
        "address": {"city": "example"},
        "previous": [{"city": "example"}],
        "manager": None,  # the self-reference is cut at the nullable branch
    }
    Person.model_validate(value)


def test_response_format_json_schema(server: FakeLLMServer) -> None:
    response = call(server, "echo", "Describe someone aged 30", response_format=Person)
    person = Person.model_validate_json(response.choices[0].message.content)
    assert person.age == 30
    assert server.requests[-1].params["response_format"]["type"] == "json_schema"


def test_response_format_json_object(server: FakeLLMServer) -> None:
    response = call(server, "echo", "hi", response_format={"type": "json_object"})
    assert json.loads(response.choices[0].message.content) == {"answer": "Echo: hi"}
    server.set_behavior("echo", respond=lambda m: '{"score": 9}')
    response = call(server, "echo", "hi", response_format={"type": "json_object"})
    assert json.loads(response.choices[0].message.content) == {"score": 9}


# ---------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (500, litellm.InternalServerError),
        (429, litellm.RateLimitError),
        (400, litellm.ContextWindowExceededError),
        (401, litellm.AuthenticationError),
        (422, litellm.BadRequestError),
    ],
)
def test_fail_status_maps_to_litellm_exception(server: FakeLLMServer, status: int, expected: type) -> None:
    server.set_behavior("echo", fail_status=status)
    for _ in range(2):
        with pytest.raises(expected):
            call(server, "echo", "hi")
    assert len(server.requests) == 2  # no retries


def test_fail_times_then_recovers(server: FakeLLMServer) -> None:
    server.set_behavior("echo", fail_status=500, fail_times=2)
    for _ in range(2):
        with pytest.raises(litellm.InternalServerError):
            call(server, "echo", "hi")
    assert call(server, "echo", "hi").choices[0].message.content == "Echo: hi"
    assert server.behavior("echo").fail_times == 0


def test_context_window_from_prompt_size(server: FakeLLMServer) -> None:
    server.set_behavior("echo", context_window=3)
    assert call(server, "echo", "one two three").choices[0].message.content
    with pytest.raises(litellm.ContextWindowExceededError):
        call(server, "echo", "one two three four")


def test_unknown_model_is_404(server: FakeLLMServer) -> None:
    with pytest.raises(litellm.NotFoundError):
        call(server, "nope", "hi")
    assert server.requests[-1].model == "nope"


@pytest.mark.parametrize(
    ("behavior", "status", "code"),
    [
        (ModelBehavior(fail_status=500), 500, "server_error"),
        (ModelBehavior(fail_status=429), 429, "rate_limit_exceeded"),
        (ModelBehavior(fail_status=400), 400, "context_length_exceeded"),
    ],
)
def test_error_body_is_openai_style(server: FakeLLMServer, behavior: ModelBehavior, status: int, code: str) -> None:
    server.set_behavior("echo", behavior)
    got_status, raw = http(server, "/v1/chat/completions", {"model": "echo", "messages": []})
    error = json.loads(raw)["error"]
    assert got_status == status
    assert error["code"] == code
    assert error["message"] and error["type"]


def test_unknown_model_and_path_error_bodies(server: FakeLLMServer) -> None:
    status, raw = http(server, "/v1/chat/completions", {"model": "nope", "messages": []})
    assert status == 404 and json.loads(raw)["error"]["code"] == "model_not_found"
    status, raw = http(server, "/v1/other", {})
    assert status == 404 and "message" in json.loads(raw)["error"]


def test_timeout_and_slow_request_does_not_block_others(server: FakeLLMServer) -> None:
    started = time.monotonic()
    with pytest.raises(litellm.Timeout):
        call(server, "slow", "hi", timeout=0.5)
    assert time.monotonic() - started < 1.5

    results: list[str] = []
    slow = threading.Thread(target=lambda: results.append(call(server, "slow", "hi").choices[0].message.content))
    slow.start()
    started = time.monotonic()
    assert call(server, "echo", "fast").choices[0].message.content == "Echo: fast"
    assert time.monotonic() - started < 1.0
    slow.join()
    assert results == ["Echo: hi"]


def test_stop_is_quick_and_idempotent() -> None:
    server = FakeLLMServer({"slow": ModelBehavior(delay=30)}).start()
    base_url = server.base_url
    pending = threading.Thread(target=http, args=(server, "/v1/chat/completions", {"model": "slow", "messages": []}))
    pending.start()
    while not server.requests:  # wait until the delayed request is being handled
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    server.stop()
    assert time.monotonic() - started < 2.0
    pending.join(timeout=5)
    assert not pending.is_alive()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(base_url + "/models", timeout=2)


def test_failing_respond_is_a_500_with_its_error(server: FakeLLMServer) -> None:
    server.set_behavior("echo", respond=lambda m: 1 / 0)
    with pytest.raises(litellm.InternalServerError, match="ZeroDivisionError"):
        call(server, "echo", "hi")


def test_the_module_runs_a_server_until_interrupted() -> None:
    import signal
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "bandit_router.testing", "--port", "0", "model-x", "model-y",
                                "--judge", "grader"], stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("serving model-x, model-y, grader at http://127.0.0.1:")
        base_url = line.split(" at ")[1].split(" ")[0]
        reply = litellm.completion(model="openai/model-y", api_base=base_url, api_key="sk-test",
                                   messages=[{"role": "user", "content": "ping"}])
        assert reply.choices[0].message.content == "Echo: ping"
        judge = LLMJudge(Model("openai/grader", input_cost_per_token=0, output_cost_per_token=0, api_base=base_url,
                               api_key="sk-test"))
        grades = {judge("What is 2 + 3?", answer) for answer in ("5", "five", "4", "no idea", "2 + 3 = 5")}
        assert len(grades) > 1 and all(0 <= g <= 1 for g in grades)  # a grade alone, varying with the answer
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0

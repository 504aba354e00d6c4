"""The official openai client (sync, async, streaming, tools) and LangChain's ChatOpenAI against the served router,
which calls the local OpenAI-compatible test server."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from .conftest import CHEAP, DEAR, KEYS, LiveServer

TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                        "required": ["city"]}}}


def client(served: LiveServer, tenant: str = "team-a") -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url + "/v1", api_key=KEYS[tenant], max_retries=0)


def test_sync_completion_carries_route_id_and_chosen_model(served: LiveServer, upstream) -> None:
    response = client(served).chat.completions.create(model="router", messages=[{"role": "user", "content": "hi 1"}])
    assert response.choices[0].message.content == "Echo: hi 1"
    assert response.model in (CHEAP, DEAR)
    extra = response.model_extra["bandit_router"]
    assert response.id == extra["route_id"] and len(response.id) == 32
    assert extra["model"] == response.model and extra["cost"] > 0
    assert response.usage.prompt_tokens == 2 and response.usage.completion_tokens == 3
    assert upstream.requests[-1].model == response.model.split("/")[1]  # the upstream saw the chosen model


def test_dial_in_the_model_name_and_extra_body(served: LiveServer, upstream) -> None:
    openai_client = client(served)
    response = openai_client.chat.completions.create(model="router:1", messages=[{"role": "user", "content": "x"}])
    assert response.model_extra["bandit_router"]["cost_weight"] == 1.0
    response = openai_client.chat.completions.create(model="router", messages=[{"role": "user", "content": "x"}],
                                                     extra_body={"cost_weight": 0.25, "models": [DEAR]})
    assert response.model == DEAR and response.model_extra["bandit_router"]["cost_weight"] == 0.25
    assert upstream.requests[-1].model == "model-b"


def test_response_format_passes_through(served: LiveServer) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    response = client(served).chat.completions.create(
        model="router", messages=[{"role": "user", "content": "give 7"}],
        response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": schema}})
    assert json.loads(response.choices[0].message.content) == {"n": 7}


def test_tools(served: LiveServer) -> None:
    openai_client = client(served)
    messages = [{"role": "user", "content": "weather in 'Paris'"}]
    first = openai_client.chat.completions.create(model="router", messages=messages, tools=[TOOL])
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    second = openai_client.chat.completions.create(model="router", messages=messages, tools=[TOOL])
    assert second.choices[0].message.content == "Tool result: sunny"


def test_streaming_tool_calls(served: LiveServer) -> None:
    stream = client(served).chat.completions.create(
        model="router", messages=[{"role": "user", "content": "weather in 'Rome'"}], tools=[TOOL], stream=True)
    arguments = "".join(c.choices[0].delta.tool_calls[0].function.arguments or ""
                        for c in stream if c.choices and c.choices[0].delta.tool_calls)
    assert json.loads(arguments) == {"city": "Rome"}


async def test_async_client_and_async_stream(served: LiveServer) -> None:
    async with openai.AsyncOpenAI(base_url=served.url + "/v1", api_key=KEYS["team-b"], max_retries=0) as aclient:
        response = await aclient.chat.completions.create(model="router",
                                                         messages=[{"role": "user", "content": "async"}])
        assert response.choices[0].message.content == "Echo: async"
        stream = await aclient.chat.completions.create(model="router", stream=True,
                                                       messages=[{"role": "user", "content": "async stream"}])
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "Echo: async stream"


def test_langchain_chat_openai(served: LiveServer) -> None:
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(base_url=served.url + "/v1", api_key=KEYS["team-a"], model="router:0.2", max_retries=0)
    reply = chat.invoke("hello langchain")
    assert reply.content == "Echo: hello langchain"
    assert reply.response_metadata["model_name"] in (CHEAP, DEAR) and len(reply.response_metadata["id"]) == 32
    streamed = list(chat.stream("streamed reply"))
    assert "".join(c.content for c in streamed) == "Echo: streamed reply"
    assert sum((c.usage_metadata or {}).get("output_tokens", 0) for c in streamed) == 3
    bound = chat.bind_tools([TOOL["function"] | {"name": "get_weather"}])
    call = bound.invoke("weather in 'Oslo'").tool_calls[0]
    assert call["name"] == "get_weather" and call["args"] == {"city": "Oslo"}


@pytest.mark.parametrize("body, status, param", [
    ({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}, 404, "model"),
    ({"messages": [{"role": "user", "content": "x"}]}, 400, "model"),
    ({"model": "router:2", "messages": [{"role": "user", "content": "x"}]}, 400, "model"),
    ({"model": "router", "messages": []}, 400, "messages"),
    ({"model": "router", "messages": [{"role": "user", "content": "x"}, {"role": "usr", "content": "y"}]}, 400,
     "messages[1].role"),
    ({"model": "router", "messages": [{"role": "user", "content": 5}]}, 400, "messages[0].content"),
    ({"model": "router", "messages": [{"role": "user", "content": "x"}], "cost_weight": -1}, 400, "cost_weight"),
    ({"model": "router", "messages": [{"role": "user", "content": "x"}], "bogus": 1}, 400, "bogus"),
    ({"model": "router", "messages": [{"role": "user", "content": "x"}], "models": ["nope/x"]}, 400, "models"),
    ({"model": "router", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, 400, "max_tokens"),
    ({"model": "router", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, 400, "temperature"),
    ({"model": "router", "messages": [{"role": "user", "content": "x"}], "n": 0}, 400, "n"),
    ({"model": "router", "messages": [{"role": "user", "content": "x"}], "stop": [1]}, 400, "stop"),
    ({"model": "router", "messages": [{"role": "user", "content": "x"}], "tools": {"type": "function"}}, 400, "tools"),
])
def test_invalid_requests_answer_openai_errors(served: LiveServer, body, status, param) -> None:
    response = httpx.post(served.url + "/v1/chat/completions", json=body,
                          headers={"Authorization": f"Bearer {KEYS['team-a']}"})
    assert response.status_code == status
    error = response.json()["error"]
    assert error["param"] == param and error["message"] and error["type"]


def test_openai_client_raises_typed_errors(served: LiveServer) -> None:
    stranger = openai.OpenAI(base_url=served.url + "/v1", api_key="sk-wrong-key-0123456789", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stranger.chat.completions.create(model="router", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="unknown names"):
        client(served).chat.completions.create(model="router", messages=[{"role": "user", "content": "x"}],
                                               extra_body={"models": ["openai/nope"]})


def test_models_and_health(served: LiveServer) -> None:
    models = client(served).models.list()
    assert [m.id for m in models.data] == ["router"]
    assert httpx.get(served.url + "/healthz").json()["status"] == "ok"

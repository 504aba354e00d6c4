"""The core router's call kwargs: complete/acomplete/stream/astream refuse a misspelt or malformed argument with the
wrappers' error before routing (nothing held, logged or sent), and pass LiteLLM's call arguments through."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import pytest

from bandit_router import Budget, ConfigError, Model, Router
from bandit_router.feedback import check_call_kwargs
from bandit_router.testing import FakeLLMServer

from .conftest import hashed_bow

PROMPT = "What is two plus two?"


async def _drain(stream: Any) -> list[Any]:
    return [chunk async for chunk in stream]


CALLS: dict[str, Callable[..., Any]] = {  # each call made and read to its end
    "complete": lambda router, **kw: router.complete(PROMPT, **kw),
    "acomplete": lambda router, **kw: asyncio.run(router.acomplete(PROMPT, **kw)),
    "stream": lambda router, **kw: list(router.stream(PROMPT, **kw)),
    "astream": lambda router, **kw: asyncio.run(_drain(router.astream(PROMPT, **kw))),
}


@pytest.fixture
def server():
    with FakeLLMServer(["m"]) as fake:
        yield fake


@pytest.fixture
def router(server: FakeLLMServer) -> Router:
    card = Model("openai/m", input_cost_per_token=1e-6, output_cost_per_token=2e-6, api_base=server.base_url,
                 api_key="sk-test", supports_tools=True)
    return Router([card], encoder=hashed_bow, seed=0, budget=Budget(10.0), log=":memory:")


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("kwargs", [{"temprature": 0.2}, {"temperature": 3}])
def test_a_misspelt_or_malformed_argument_is_refused_before_routing(router: Router, server: FakeLLMServer,
                                                                    call: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as refused:
        CALLS[call](router, **kwargs)
    with pytest.raises(ConfigError) as wrappers:  # the wrappers' and the service's check, word for word
        check_call_kwargs(kwargs)
    assert str(refused.value) == str(wrappers.value)
    assert router.budget.reserved() == 0.0 and router.gate.held == {}  # nothing held ...
    assert list(router.log.rows()) == [] and server.requests == []  # ... logged or sent


def test_the_error_names_the_argument_and_the_closest_known_one(router: Router) -> None:
    with pytest.raises(ConfigError, match="unknown call argument 'temprature'; did you mean 'temperature'"):
        router.stream(PROMPT, temprature=0.2)  # refused on creation, before the stream is read


@pytest.mark.parametrize("call", CALLS)
def test_litellms_call_arguments_pass_through(router: Router, server: FakeLLMServer, call: str) -> None:
    tools = [{"type": "function", "function": {"name": "add", "description": "Add two numbers.",
                                               "parameters": {"type": "object", "properties": {}}}}]
    CALLS[call](router, api_version="2024-06-01", extra_headers={"X-Trace": "t-1"}, extra_body={"tenant": "acme"},
                timeout=30, num_retries=0, max_retries=0, tools=tools, tool_choice="auto", seed=7, user="u-1",
                temperature=0.2, max_tokens=50, task=None, budget_key=None)
    [request] = server.requests
    assert request.params["tenant"] == "acme" and request.params["tools"] == tools
    assert (request.params["seed"], request.params["temperature"]) == (7, 0.2)
    router.complete(PROMPT, response_format={"type": "json_object"})
    assert server.requests[-1].params["response_format"] == {"type": "json_object"}
    done = router.complete(PROMPT, mock_response="four", mock_delay=0.01)  # LiteLLM's test arguments
    assert done.text == "four" and len(server.requests) == 2

"""Tool calling through the router: chat_with_tools in all its forms, tool eligibility, and a FunctionAgent run."""

from __future__ import annotations

import json

import pytest
from llama_index.core.agent.workflow import FunctionAgent, ToolCall, ToolCallResult
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel

from bandit_router import Model, NoEligibleModelError, Router
from bandit_router.testing import FakeLLMServer
from llamaindex_bandit_router import BanditRouterLLM

from .conftest import BIG, CHEAP, NO_RETRIES, bag_of_words, cards


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


TOOLS = [FunctionTool.from_defaults(multiply), FunctionTool.from_defaults(weather)]
QUESTION = "What is 6 times 7?"


def assert_multiply_call(llm: BanditRouterLLM, response: ChatResponse, server: FakeLLMServer) -> None:
    [selection] = llm.get_tool_calls_from_response(response)
    assert (selection.tool_name, selection.tool_kwargs) == ("multiply", {"a": 6, "b": 6})  # numbers from the prompt
    assert selection.tool_id.startswith("call_")
    request = server.requests[-1]
    assert [t["function"]["name"] for t in request.params["tools"]] == ["multiply", "weather"]
    assert request.params["tools"][0]["function"]["parameters"]["required"] == ["a", "b"]
    assert response.message.content is None


def test_chat_with_tools(llm: BanditRouterLLM, server: FakeLLMServer) -> None:
    response = llm.chat_with_tools(TOOLS, user_msg=QUESTION)
    assert_multiply_call(llm, response, server)
    assert server.requests[-1].params["tool_choice"] == "auto"
    assert response.additional_kwargs["route_id"] and response.additional_kwargs["cost"] > 0


async def test_achat_with_tools(llm: BanditRouterLLM, server: FakeLLMServer) -> None:
    assert_multiply_call(llm, await llm.achat_with_tools(TOOLS, user_msg=QUESTION), server)


def test_stream_chat_with_tools(llm: BanditRouterLLM, server: FakeLLMServer) -> None:
    responses = list(llm.stream_chat_with_tools(TOOLS, user_msg=QUESTION))
    assert len(responses) > 3  # the arguments arrive in pieces
    partial = llm.get_tool_calls_from_response(responses[1], error_on_no_tool_call=False)
    assert [s.tool_name for s in partial] == ["multiply"]
    assert_multiply_call(llm, responses[-1], server)


async def test_astream_chat_with_tools(llm: BanditRouterLLM, server: FakeLLMServer) -> None:
    responses = [r async for r in await llm.astream_chat_with_tools(TOOLS, user_msg=QUESTION)]
    assert_multiply_call(llm, responses[-1], server)
    assert responses[-1].additional_kwargs["cost"] > 0


def test_tool_required_and_tool_choice_by_name(llm: BanditRouterLLM, server: FakeLLMServer) -> None:
    llm.chat_with_tools(TOOLS, user_msg=QUESTION, tool_required=True)
    assert server.requests[-1].params["tool_choice"] == "required"
    response = llm.chat_with_tools(TOOLS, user_msg="weather in Paris", tool_choice="weather")
    assert server.requests[-1].params["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    [selection] = llm.get_tool_calls_from_response(response)
    assert (selection.tool_name, selection.tool_kwargs) == ("weather", {"city": "example"})


class Song(BaseModel):
    title: str
    year: int


async def test_structured_prediction_requires_the_tool(llm: BanditRouterLLM, server: FakeLLMServer) -> None:
    song = llm.structured_predict(Song, PromptTemplate("Name a song from {year}."), year="1999")
    assert song == Song(title="example", year=1999)  # the server fills the schema, numbers from the prompt
    assert server.requests[-1].params["tool_choice"] == "required"
    assert await llm.astructured_predict(Song, PromptTemplate("A song from {year}."), year="1984") == Song(
        title="example", year=1984)


def test_chat_history_is_not_mutated_and_tool_results_go_back(llm: BanditRouterLLM, server: FakeLLMServer) -> None:
    history = [ChatMessage(role=MessageRole.USER, content=QUESTION)]
    first = llm.chat_with_tools(TOOLS, chat_history=history)
    assert len(history) == 1
    [call] = llm.get_tool_calls_from_response(first)
    result = ChatMessage(role=MessageRole.TOOL, content=str(multiply(**call.tool_kwargs)),
                         additional_kwargs={"tool_call_id": call.tool_id})
    second = llm.chat_with_tools(TOOLS, chat_history=[*history, first.message, result])
    assert second.message.content == "Tool result: 36"
    assert llm.get_tool_calls_from_response(second, error_on_no_tool_call=False) == []
    sent = server.requests[-1].messages
    assert sent[1]["tool_calls"][0]["id"] == call.tool_id and sent[2] == {
        "role": "tool", "content": "36", "tool_call_id": call.tool_id}
    with pytest.raises(ValueError, match="expected at least one tool call"):
        llm.get_tool_calls_from_response(second)


def test_single_tool_call_unless_parallel_allowed(llm: BanditRouterLLM) -> None:
    response = llm.chat_with_tools(TOOLS, user_msg=QUESTION)
    first = response.message.blocks[0].tool_call_id
    response.message.blocks.append(response.message.blocks[0].model_copy(update={"tool_call_id": "second"}))
    both = llm._validate_chat_with_tools_response(response.model_copy(deep=True), TOOLS, allow_parallel_tool_calls=True)
    assert [s.tool_id for s in llm.get_tool_calls_from_response(both)] == [first, "second"]
    kept = llm._validate_chat_with_tools_response(response, TOOLS, allow_parallel_tool_calls=False)
    assert [s.tool_id for s in llm.get_tool_calls_from_response(kept)] == [first]


def test_only_tool_capable_models_are_eligible_with_tools(server: FakeLLMServer) -> None:
    cheap, big = cards(server)
    no_tools = Model(**{**cheap.to_config(), "supports_tools": False}, api_key="sk-test")
    llm = BanditRouterLLM(Router([no_tools, big], encoder=bag_of_words, seed=0, cost_weight=1.0),
                          call_kwargs=NO_RETRIES)
    assert llm.complete(QUESTION).additional_kwargs["model"] == CHEAP  # the dial prefers the cheap model...
    models = {llm.chat_with_tools(TOOLS, user_msg=f"{QUESTION} {i}").additional_kwargs["model"] for i in range(5)}
    assert models == {BIG}  # ...which cannot take tools
    only_cheap = BanditRouterLLM(llm.router, models=[CHEAP], call_kwargs=NO_RETRIES)
    with pytest.raises(NoEligibleModelError, match="tools=True"):
        only_cheap.chat_with_tools(TOOLS, user_msg=QUESTION)


@pytest.mark.parametrize("streaming", [True, False])
async def test_function_agent_completes_a_task_through_the_router(llm: BanditRouterLLM, server: FakeLLMServer,
                                                                  streaming: bool) -> None:
    agent = FunctionAgent(tools=[multiply], llm=llm, system_prompt="Use the tool to multiply.", streaming=streaming)
    with llm.record_routes() as routes:
        handler = agent.run("What is 6 times 6?")
        events = [event async for event in handler.stream_events()]
        result = await handler
    assert str(result) == "Tool result: 36"
    [call] = [e for e in events if type(e) is ToolCall]
    [outcome] = [e for e in events if isinstance(e, ToolCallResult)]
    assert (call.tool_name, call.tool_kwargs, outcome.tool_output.raw_output) == ("multiply", {"a": 6, "b": 6}, 36)
    first, second = server.requests
    assert first.params["tools"][0]["function"]["name"] == "multiply"
    assert second.messages[-1] == {"role": "tool", "content": "36", "tool_call_id": call.tool_id}
    assert json.loads(second.messages[-2]["tool_calls"][0]["function"]["arguments"]) == {"a": 6, "b": 6}
    assert len(routes) == 2 and all(r["model"] in (CHEAP, BIG) and r["cost"] > 0 for r in routes)
    for route in routes:  # every step of the run can be rated
        llm.feedback(route["route_id"], 1.0)

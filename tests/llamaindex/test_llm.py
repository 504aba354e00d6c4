"""BanditRouterLLM against the local server: every call method, routing info, the dial, feedback, metadata."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole, TextBlock, ThinkingBlock, ToolCallBlock
from llama_index.core.llms import AudioBlock

from bandit_router import ConfigError, DuplicateFeedbackError, Model, Router, SpendTarget, UnknownRouteError
from bandit_router.testing import FakeLLMServer
from llamaindex_bandit_router import BanditRouterLLM
from llamaindex_bandit_router.messages import from_openai, to_openai

from .conftest import BIG, CHEAP, NO_RETRIES, bag_of_words

PROMPT = "tell me about rivers"


async def call(llm: BanditRouterLLM, method: str, **kwargs: Any) -> tuple[str, dict[str, Any], list[str]]:
    """Run one LLM method on PROMPT: (answer text, routing info of the final response, streamed deltas)."""
    messages = [ChatMessage(role=MessageRole.USER, content=PROMPT)]
    if method == "chat":
        response = llm.chat(messages, **kwargs)
        return response.message.content, response.additional_kwargs, []
    if method == "achat":
        response = await llm.achat(messages, **kwargs)
        return response.message.content, response.additional_kwargs, []
    if method == "complete":
        response = llm.complete(PROMPT, **kwargs)
        return response.text, response.additional_kwargs, []
    if method == "acomplete":
        response = await llm.acomplete(PROMPT, **kwargs)
        return response.text, response.additional_kwargs, []
    if method == "stream_chat":
        responses = list(llm.stream_chat(messages, **kwargs))
        return responses[-1].message.content, responses[-1].additional_kwargs, [r.delta for r in responses]
    if method == "astream_chat":
        responses = [r async for r in await llm.astream_chat(messages, **kwargs)]
        return responses[-1].message.content, responses[-1].additional_kwargs, [r.delta for r in responses]
    if method == "stream_complete":
        responses = list(llm.stream_complete(PROMPT, **kwargs))
        return responses[-1].text, responses[-1].additional_kwargs, [r.delta for r in responses]
    responses = [r async for r in await llm.astream_complete(PROMPT, **kwargs)]
    return responses[-1].text, responses[-1].additional_kwargs, [r.delta for r in responses]


METHODS = ["chat", "achat", "complete", "acomplete", "stream_chat", "astream_chat", "stream_complete",
           "astream_complete"]


@pytest.mark.parametrize("method", METHODS)
async def test_every_method_routes_answers_and_reports_route(method: str, llm: BanditRouterLLM,
                                                             server: FakeLLMServer) -> None:
    text, info, deltas = await call(llm, method)
    assert text == f"Echo: {PROMPT}"
    assert info["model"] in (CHEAP, BIG)
    [request] = server.requests
    assert f"openai/{request.model}" == info["model"]  # the answer came from the model the route names
    assert request.messages == [{"role": "user", "content": PROMPT}]
    card = llm.router.models[info["model"]]
    assert info["cost"] == pytest.approx(card.cost(info["prompt_tokens"], info["completion_tokens"]))
    assert (info["prompt_tokens"], info["completion_tokens"]) == (4, 5)  # words in, words out (the server's count)
    assert info["cost_weight"] == 0.0 and 0 < info["propensity"] <= 1 and info["failed"] == []
    assert llm.router.pending(info["route_id"])
    if method.startswith(("stream", "astream")):
        assert "".join(deltas) == text and len(deltas) > 2  # word by word, then the closing response
        assert request.params["stream"] is True


async def test_stream_chunks_name_the_route_before_the_cost_is_known(llm: BanditRouterLLM) -> None:
    responses = list(llm.stream_chat([ChatMessage(role=MessageRole.USER, content=PROMPT)]))
    route_ids = {r.additional_kwargs["route_id"] for r in responses}
    assert len(route_ids) == 1
    assert all("cost" not in r.additional_kwargs for r in responses[:-1])
    assert responses[-1].delta == "" and responses[-1].additional_kwargs["cost"] > 0
    assert responses[-1].raw.usage.completion_tokens == 5  # the usage chunk, for LlamaIndex token counting


def test_raw_is_the_litellm_response(llm: BanditRouterLLM) -> None:
    response = llm.chat([ChatMessage(role=MessageRole.USER, content=PROMPT)])
    assert response.raw.choices[0].message.content == f"Echo: {PROMPT}"
    assert response.raw.usage.total_tokens == 9


def test_messages_and_call_kwargs_pass_through(llm: BanditRouterLLM, server: FakeLLMServer) -> None:
    llm.call_kwargs["temperature"] = 0.3
    history = [ChatMessage(role=MessageRole.SYSTEM, content="Be brief."),
               ChatMessage(role=MessageRole.USER, content="first"),
               ChatMessage(role=MessageRole.ASSISTANT, content="ok"),
               ChatMessage(role=MessageRole.USER, content="one two three four five")]
    response = llm.chat(history, max_tokens=3, stop=["four"])
    assert response.message.content == "Echo: one two"  # cut at the stop word, within max_tokens
    [request] = server.requests
    assert request.messages == to_openai(history)
    assert (request.params["temperature"], request.params["max_tokens"], request.params["stop"]) == (0.3, 3, ["four"])


# -- the dial and the allowed models ----------------------------------------------------------------------------
def trained_router(server: FakeLLMServer) -> Router:
    """A router that has learnt the big model answers far better than the cheap one."""
    from .conftest import cards

    router = Router(cards(server), encoder=bag_of_words, seed=0)
    for _ in range(30):
        router.observe(PROMPT, BIG, 1.0)
        router.observe(PROMPT, CHEAP, 0.6)
    return router


def test_dial_per_instance_and_per_call(server: FakeLLMServer) -> None:
    router = trained_router(server)
    quality = BanditRouterLLM(router, call_kwargs=NO_RETRIES)
    thrifty = BanditRouterLLM(router, cost_weight=1.0, call_kwargs=NO_RETRIES)
    assert quality.complete(PROMPT).additional_kwargs["model"] == BIG
    assert thrifty.complete(PROMPT).additional_kwargs["model"] == CHEAP
    assert quality.complete(PROMPT, cost_weight=1.0).additional_kwargs["model"] == CHEAP  # per call wins
    response = thrifty.complete(PROMPT, cost_weight=0.0)
    assert response.additional_kwargs["model"] == BIG and response.additional_kwargs["cost_weight"] == 0.0
    router.cost_weight = 1.0  # no dial on the instance: the router's default applies
    assert quality.complete(PROMPT).additional_kwargs["cost_weight"] == 1.0
    router.cost_weight = target = SpendTarget(1e-9, start=0.25)  # ... or its spend target's current dial
    assert quality.complete(PROMPT).additional_kwargs["cost_weight"] == 0.25 and target.requests == 1
    assert thrifty.complete(PROMPT).additional_kwargs["cost_weight"] == 1.0 and target.requests == 1


def test_allowed_models_per_instance_and_per_call(router: Router, server: FakeLLMServer) -> None:
    only_cheap = BanditRouterLLM(router, models=[CHEAP], call_kwargs=NO_RETRIES)
    assert {only_cheap.complete(f"q {i}").additional_kwargs["model"] for i in range(5)} == {CHEAP}
    llm = BanditRouterLLM(router, call_kwargs=NO_RETRIES)
    assert {llm.complete(f"q {i}", models=[BIG]).additional_kwargs["model"] for i in range(5)} == {BIG}
    assert {r.model for r in server.requests} == {"cheap", "big"}


@pytest.mark.parametrize("kwargs, match", [
    ({"cost_weight": 1.5}, r"cost_weight must be a number in \[0, 1\]"),
    ({"cost_weight": "high"}, r"cost_weight must be a number in \[0, 1\]"),
    ({"models": ["openai/nope"]}, r"models contains unknown names \['openai/nope'\]"),
    ({"models": []}, r"models must name at least one model"),
    ({"models": "openai/small"}, r"models must be a list of model names, got 'openai/small'"),
])
def test_invalid_settings_raise_config_error(router: Router, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        BanditRouterLLM(router, **kwargs)


def test_invalid_router_and_per_call_dial_raise_config_error(llm: BanditRouterLLM) -> None:
    with pytest.raises(ConfigError, match="router must be a bandit_router.Router"):
        BanditRouterLLM(router="openai/gpt-4o")
    with pytest.raises(ConfigError, match=r"cost_weight must be a number in \[0, 1\]"):
        llm.complete(PROMPT, cost_weight=-0.1)


# -- metadata ---------------------------------------------------------------------------------------------------
def test_metadata_is_the_smallest_eligible_window_and_the_expected_answer(router: Router,
                                                                          server: FakeLLMServer) -> None:
    meta = BanditRouterLLM(router).metadata
    assert (meta.context_window, meta.num_output) == (8_192, 256)  # the router's expected output tokens
    assert meta.is_chat_model and meta.is_function_calling_model
    big_only = BanditRouterLLM(router, models=[BIG], call_kwargs={"max_tokens": 500}).metadata
    assert (big_only.context_window, big_only.num_output) == (128_000, 500)
    router.add_model(Model("openai/tiny", input_cost_per_token=0.0, output_cost_per_token=0.0, context_window=2_048,
                           max_output_tokens=256, supports_tools=False))
    assert BanditRouterLLM(router).metadata.context_window == 2_048  # follows models added at run time


def test_not_function_calling_without_a_tool_capable_model(server: FakeLLMServer) -> None:
    router = Router([Model("openai/cheap", input_cost_per_token=0.0, output_cost_per_token=0.0,
                           supports_tools=False)], encoder=bag_of_words)
    assert not BanditRouterLLM(router).metadata.is_function_calling_model


# -- feedback ---------------------------------------------------------------------------------------------------
def test_feedback_by_route_id_reaches_router_and_log(llm: BanditRouterLLM) -> None:
    route_id = llm.chat([ChatMessage(role=MessageRole.USER, content=PROMPT)]).additional_kwargs["route_id"]
    llm.feedback(route_id, 0.8)
    assert not llm.router.pending(route_id)
    [row] = [r for r in llm.router.log.rows() if r["route_id"] == route_id]
    assert (row["score"], row["status"]) == (0.8, "served")
    with pytest.raises(DuplicateFeedbackError):
        llm.feedback(route_id, 0.8)
    with pytest.raises(UnknownRouteError):
        llm.feedback("no-such-route", 1.0)
    with pytest.raises(ConfigError, match=r"score must be a finite number in \[0, 1\]"):
        llm.feedback(route_id, 1.5)


def test_feedback_teaches_the_router(server: FakeLLMServer) -> None:
    from .conftest import cards

    llm = BanditRouterLLM(Router(cards(server), encoder=bag_of_words, seed=0), call_kwargs=NO_RETRIES)
    for i in range(40):
        info = llm.complete(f"{PROMPT} {i % 4}").additional_kwargs
        llm.feedback(info["route_id"], 1.0 if info["model"] == CHEAP else 0.0)
    last = [llm.complete(f"{PROMPT} {i % 4}").additional_kwargs["model"] for i in range(20)]
    assert last.count(CHEAP) >= 18


async def test_record_routes_collects_calls_made_in_the_block(llm: BanditRouterLLM, router: Router) -> None:
    other = BanditRouterLLM(router, call_kwargs=NO_RETRIES)
    outside = llm.complete("before")
    with llm.record_routes() as routes:
        first = llm.complete("one")
        streamed = list(llm.stream_complete("two"))[-1]
        awaited = await llm.achat([ChatMessage(role=MessageRole.USER, content="three")])
        another = other.complete("another LLM's call over the same router")
    after = llm.complete("after")
    assert [r["route_id"] for r in routes] == [first.additional_kwargs["route_id"],
                                                streamed.additional_kwargs["route_id"],
                                                awaited.additional_kwargs["route_id"],
                                                another.additional_kwargs["route_id"]]
    assert all(r["cost"] > 0 for r in routes)
    assert {outside.additional_kwargs["route_id"], after.additional_kwargs["route_id"]}.isdisjoint(
        r["route_id"] for r in routes)


# -- message translation (no network) ----------------------------------------------------------------------------
def test_to_openai_translates_text_tool_calls_and_tool_results() -> None:
    messages = [
        ChatMessage(role=MessageRole.SYSTEM, content="sys"),
        ChatMessage(role=MessageRole.ASSISTANT, blocks=[ThinkingBlock(content="hmm"), TextBlock(text="calling"),
                                                        ToolCallBlock(tool_call_id="c1", tool_name="add",
                                                                      tool_kwargs={"a": 1})]),
        ChatMessage(role=MessageRole.TOOL, content="2", additional_kwargs={"tool_call_id": "c1"}),
        ChatMessage(role=MessageRole.ASSISTANT, content=None, additional_kwargs={"tool_calls": [
            {"id": "c2", "type": "function", "function": {"name": "add", "arguments": '{"a": 2}'}}]}),
        ChatMessage(role=MessageRole.CHATBOT, content="from another integration"),
    ]
    assert to_openai(messages) == [
        {"role": "system", "content": "sys"},
        {"role": "assistant", "content": "calling", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}]},
        {"role": "tool", "content": "2", "tool_call_id": "c1"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c2", "type": "function", "function": {"name": "add", "arguments": '{"a": 2}'}}]},
        {"role": "assistant", "content": "from another integration"},
    ]


def test_to_openai_rejects_blocks_it_cannot_send() -> None:
    message = ChatMessage(role=MessageRole.USER, blocks=[AudioBlock(audio=b"RIFF", format="wav")])
    with pytest.raises(ConfigError, match="message blocks must be text, images or tool calls; got a 'audio' block"):
        to_openai([message])


def test_from_openai_round_trips_tool_calls(llm: BanditRouterLLM) -> None:
    import litellm

    raw = litellm.Message(content=None, role="assistant", tool_calls=[
        {"id": "c9", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}])
    message = from_openai(raw)
    assert message.content is None
    assert [(b.tool_call_id, b.tool_name, b.tool_kwargs) for b in message.blocks] == [("c9", "add", {"a": 1, "b": 2})]
    assert to_openai([message])[0]["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a": 1, "b": 2}'}

"""ChatBanditRouter against the local server: metadata, pass-through kwargs, the dial, model subsets, tools,
structured output, streaming, async, batch and pinning a model per thread."""

from __future__ import annotations

from dataclasses import replace

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.caches import InMemoryCache
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from pydantic import BaseModel, ValidationError

from bandit_router import ConfigError, Router, SpendTarget
from bandit_router.testing import FakeLLMServer
from langchain_bandit_router import ChatBanditRouter

from .conftest import LARGE, SMALL, cards, hashed_bow


@tool
def square(x: int) -> int:
    """Square a number."""
    return x * x


@tool
def shout(text: str) -> str:
    """Shout a text."""
    return text.upper()


class Answer(BaseModel):
    value: int
    unit: str


def served(server: FakeLLMServer) -> list[str]:
    """The router's names of the models the server was asked, oldest first."""
    return [f"openai/{r.model}" for r in server.requests]


def test_response_metadata_usage_and_cost(llm: ChatBanditRouter, router: Router, server: FakeLLMServer) -> None:
    message = llm.invoke("hello there")
    assert message.content == "Echo: hello there"
    meta = message.response_metadata
    assert meta["model_name"] == served(server)[-1]
    assert (meta["cost_weight"], meta["failed"], meta["finish_reason"]) == (0.0, [], "stop")
    assert 0 < meta["propensity"] <= 1
    assert router.pending(meta["route_id"])
    usage = message.usage_metadata
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (2, 3, 5)  # server counts words
    assert meta["cost"] == pytest.approx(router.models[meta["model_name"]].cost(2, 3))


def test_model_kwargs_pass_through(router: Router, server: FakeLLMServer) -> None:
    llm = ChatBanditRouter(router=router, temperature=0.3, max_tokens=7, timeout=5, stop=["zz"],
                           model_kwargs={"seed": 11})
    llm.invoke("hi", top_p=0.5)
    params = server.requests[-1].params
    assert (params["temperature"], params["max_tokens"], params["stop"], params["seed"], params["top_p"]) == (
        0.3, 7, ["zz"], 11, 0.5)
    llm.invoke("hi", stop=["yy"], max_tokens=3)
    assert (server.requests[-1].params["stop"], server.requests[-1].params["max_tokens"]) == (["yy"], 3)


def test_cost_weight_per_instance_per_call_and_from_config(router: Router) -> None:
    llm = ChatBanditRouter(router=router, cost_weight=0.4)
    assert llm.invoke("hi").response_metadata["cost_weight"] == 0.4
    assert llm.invoke("hi", cost_weight=0.9).response_metadata["cost_weight"] == 0.9
    config = {"configurable": {"cost_weight": 0.7}}
    assert llm.invoke("hi", config=config).response_metadata["cost_weight"] == 0.7
    assert list(llm.stream("hi", config=config))[0].response_metadata["cost_weight"] == 0.7  # the route comes first
    chain = ChatPromptTemplate.from_template("{q}") | llm
    assert chain.invoke({"q": "hi"}, config=config).response_metadata["cost_weight"] == 0.7
    assert llm.invoke("hi", config=config, cost_weight=0.2).response_metadata["cost_weight"] == 0.2  # call beats run
    steps = {"easy": llm.bind(cost_weight=1.0), "hard": llm.bind(cost_weight=0.0)}  # one dial per step of a graph
    assert [steps[s].invoke("hi").response_metadata["cost_weight"] for s in ("easy", "hard")] == [1.0, 0.0]


def test_without_a_dial_the_routers_spend_target_sets_it(router: Router) -> None:
    router.cost_weight = target = SpendTarget(1e-5, start=0.25)  # below any call here: each request raises the dial
    llm = ChatBanditRouter(router=router)
    dials = [llm.invoke(f"q {i}").response_metadata["cost_weight"] for i in range(3)]
    assert dials[0] == 0.25 and dials[0] < dials[1] < dials[2] and target.requests == 3
    assert llm.invoke("hi", cost_weight=0.5).response_metadata["cost_weight"] == 0.5 and target.requests == 3


async def test_cost_weight_from_config_async(router: Router) -> None:
    llm = ChatBanditRouter(router=router)
    config = {"configurable": {"cost_weight": 0.6}}
    assert (await llm.ainvoke("hi", config=config)).response_metadata["cost_weight"] == 0.6
    chunks = [c async for c in llm.astream("hi", config=config)]
    assert chunks[0].response_metadata["cost_weight"] == 0.6


def test_full_cost_weight_routes_to_the_cheap_model(router: Router) -> None:
    llm = ChatBanditRouter(router=router, cost_weight=1.0)
    assert {llm.invoke(f"question {i}").response_metadata["model_name"] for i in range(10)} == {SMALL}


@pytest.mark.parametrize("bad", [-0.1, 1.5, "high", True])
def test_invalid_cost_weight_is_rejected(router: Router, bad: object) -> None:
    with pytest.raises(ValidationError, match="cost_weight"):
        ChatBanditRouter(router=router, cost_weight=bad)
    with pytest.raises(ConfigError, match="cost_weight"):
        ChatBanditRouter(router=router).invoke("hi", cost_weight=bad)


def test_the_router_may_be_given_by_position(router: Router) -> None:
    llm = ChatBanditRouter(router, cost_weight=0.2)
    assert llm.router is router and llm.cost_weight == 0.2 and llm.invoke("hi").content == "Echo: hi"
    assert repr(router) in repr(llm) and "models=['openai/small', 'openai/large']" in repr(router)


def test_unknown_settings_are_rejected(router: Router) -> None:
    with pytest.raises(ValidationError, match="cost_wieght"):
        ChatBanditRouter(router=router, cost_wieght=0.5)
    with pytest.raises(ValidationError, match="unknown names"):
        ChatBanditRouter(router=router, models=["openai/nope"])
    with pytest.raises(ConfigError, match="unknown names"):
        ChatBanditRouter(router=router).invoke("hi", models=["openai/nope"])
    with pytest.raises(ConfigError, match=r"models must be a list of model names, got 'openai/small'; write \["):
        ChatBanditRouter(router=router).invoke("hi", models="openai/small")
    with pytest.raises(ValidationError, match="models must name at least one model"):  # at once, not at the call
        ChatBanditRouter(router=router, models=[])
    with pytest.raises(ValidationError, match="max_tokens must be an integer >= 1"):
        ChatBanditRouter(router=router, max_tokens=0)


def test_allowed_models_per_instance_and_per_call(router: Router) -> None:
    llm = ChatBanditRouter(router=router, models=[LARGE])
    assert {llm.invoke(f"q {i}").response_metadata["model_name"] for i in range(5)} == {LARGE}
    assert {llm.invoke(f"q {i}", models=[SMALL]).response_metadata["model_name"] for i in range(5)} == {SMALL}
    assert llm.invoke("q", model=SMALL).response_metadata["model_name"] == SMALL


def test_tool_calls_come_back_as_langchain_tool_calls(llm: ChatBanditRouter, server: FakeLLMServer) -> None:
    message = llm.bind_tools([square]).invoke("What is 12 squared?")
    [call] = message.tool_calls
    assert (call["name"], call["args"], call["type"]) == ("square", {"x": 12}, "tool_call")
    assert message.response_metadata["finish_reason"] == "tool_calls"
    assert server.requests[-1].params["tools"][0]["function"]["name"] == "square"
    follow_up = llm.bind_tools([square]).invoke(
        [HumanMessage("What is 12 squared?"), message, ToolMessage("144", tool_call_id=call["id"])])
    assert follow_up.content == "Tool result: 144" and not follow_up.tool_calls


def test_streamed_tool_calls_reassemble(llm: ChatBanditRouter) -> None:
    full = None
    for chunk in llm.bind_tools([square]).stream("What is 7 squared?"):
        full = chunk if full is None else full + chunk
    assert [(c["name"], c["args"]) for c in full.tool_calls] == [("square", {"x": 7})]
    assert full.response_metadata["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(("choice", "sent"), [
    ("shout", {"type": "function", "function": {"name": "shout"}}),
    ("any", "required"), (True, "required"), ("auto", "auto"), ("none", "none"),
])
def test_tool_choice_is_sent_in_openai_form(llm: ChatBanditRouter, server: FakeLLMServer, choice: object,
                                            sent: object) -> None:
    message = llm.bind_tools([square, shout], tool_choice=choice).invoke("Say 'hello' loudly")
    assert server.requests[-1].params["tool_choice"] == sent
    if choice == "shout":
        assert message.tool_calls[0]["name"] == "shout" and message.tool_calls[0]["args"] == {"text": "hello"}
    if choice == "none":
        assert not message.tool_calls


def test_single_tool_forced_by_any(llm: ChatBanditRouter, server: FakeLLMServer) -> None:
    llm.bind_tools([square], tool_choice="any").invoke("hi")
    assert server.requests[-1].params["tool_choice"] == {"type": "function", "function": {"name": "square"}}


def test_unknown_tool_choice_is_rejected(llm: ChatBanditRouter) -> None:
    with pytest.raises(ConfigError, match="tool_choice"):
        llm.bind_tools([square], tool_choice="cube")


def test_only_tool_capable_models_serve_tool_calls(server: FakeLLMServer) -> None:
    router = Router(cards(server.base_url, tools=(False, True)), encoder=hashed_bow, seed=0)
    llm = ChatBanditRouter(router=router)
    with_tools = llm.bind_tools([square])
    assert {with_tools.invoke(f"What is {i} squared?").response_metadata["model_name"] for i in range(8)} == {LARGE}
    structured = llm.with_structured_output(Answer)
    for i in range(4):
        assert structured.invoke(f"How long, {i} metres?") == Answer(value=i, unit="example")
    assert set(served(server)) == {LARGE}
    assert {llm.invoke(f"plain question {i}").response_metadata["model_name"] for i in range(12)} == {SMALL, LARGE}


def test_structured_output_include_raw(llm: ChatBanditRouter) -> None:
    result = llm.with_structured_output(Answer, include_raw=True).invoke("Give me 5 'kg'")
    assert result["parsed"] == Answer(value=5, unit="kg")
    assert result["raw"].response_metadata["route_id"]


def test_stream_starts_with_the_route_and_ends_with_usage(llm: ChatBanditRouter, router: Router) -> None:
    chunks = list(llm.stream("stream this please"))
    assert all(isinstance(c, AIMessageChunk) for c in chunks) and len(chunks) > 3
    full = sum(chunks[1:], chunks[0])
    assert full.content == "Echo: stream this please"
    assert chunks[0].response_metadata["route_id"] == full.response_metadata["route_id"]
    assert router.pending(chunks[0].response_metadata["route_id"])
    last = chunks[-1]
    assert last.chunk_position == "last"
    assert last.usage_metadata == {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}
    model = full.response_metadata["model_name"]
    assert last.response_metadata["cost"] == pytest.approx(router.models[model].cost(3, 4))
    assert sum(bool(c.usage_metadata) for c in chunks) == 1  # usage is counted once


async def test_async_invoke_stream_and_batch(llm: ChatBanditRouter, router: Router) -> None:
    message = await llm.ainvoke("async hello")
    assert message.content == "Echo: async hello" and router.pending(message.response_metadata["route_id"])
    chunks = [c async for c in llm.astream("async stream")]
    assert "".join(c.content for c in chunks) == "Echo: async stream"
    assert chunks[0].response_metadata["route_id"] and chunks[-1].usage_metadata["output_tokens"] == 3
    replies = await llm.abatch(["one", "two", "three"])
    assert [r.content for r in replies] == ["Echo: one", "Echo: two", "Echo: three"]
    assert len({r.response_metadata["route_id"] for r in replies}) == 3


def test_batch_routes_each_input(llm: ChatBanditRouter) -> None:
    replies = llm.batch([f"item {i}" for i in range(6)], config={"max_concurrency": 3})
    assert [r.content for r in replies] == [f"Echo: item {i}" for i in range(6)]
    assert len({r.response_metadata["route_id"] for r in replies}) == 6


def agent_steps(llm: ChatBanditRouter, thread: str, steps: int = 8) -> set[str]:
    """Models that served `steps` tool-calling steps of one agent thread."""
    bound = llm.bind_tools([square])
    config = {"configurable": {"thread_id": thread}}
    return {bound.invoke(f"step {i}: square 3", config=config).response_metadata["model_name"] for i in range(steps)}


def test_model_is_chosen_per_step_unless_pinned(router: Router) -> None:
    assert agent_steps(ChatBanditRouter(router=router), "t0") == {SMALL, LARGE}
    pinned = ChatBanditRouter(router=router, pin_model=True)
    threads = {thread: agent_steps(pinned, thread) for thread in ("t1", "t2", "t3", "t4", "t5", "t6")}
    assert all(len(models) == 1 for models in threads.values())
    assert set.union(*threads.values()) == {SMALL, LARGE}  # each thread pinned on its own first choice


def test_a_thread_stays_pinned_across_instances_by_its_history(router: Router) -> None:
    """A sibling serving another node, or an agent rebuilt per request, has no pin of its own for the thread: it
    pins the thread to the model of the last routed reply in the history (a checkpointer keeps it)."""
    config = {"configurable": {"thread_id": "t"}}
    first = ChatBanditRouter(router=router, pin_model=True, cost_weight=0.0).invoke("first", config=config)
    history = [HumanMessage("first"), first, HumanMessage("second")]
    for cost_weight in (0.0, 1.0):
        later = ChatBanditRouter(router=router, pin_model=True, cost_weight=cost_weight).invoke(history, config=config)
        assert later.response_metadata["model_name"] == first.response_metadata["model_name"]
    unpinned = {ChatBanditRouter(router=router, cost_weight=w).invoke(history).response_metadata["model_name"]
                for w in (0.0, 1.0)}
    assert unpinned == {SMALL, LARGE}  # without the pin the two dials choose differently


def test_pinned_model_that_fails_is_replaced_and_repinned(router: Router, server: FakeLLMServer) -> None:
    llm = ChatBanditRouter(router=router, pin_model=True, cost_weight=1.0)  # the first choice is the cheap model
    config = {"configurable": {"thread_id": "t"}}
    assert llm.invoke("first", config=config).response_metadata["model_name"] == SMALL
    server.set_behavior("small", fail_status=500)
    second = llm.invoke("second", config=config)
    assert second.response_metadata["model_name"] == LARGE and second.content == "Echo: second"
    assert second.response_metadata["failed"] == [SMALL] and router.failures[SMALL] == 1  # the fallback is shown
    server.set_behavior("small", fail_status=None)
    assert llm.invoke("third", config=config).response_metadata["model_name"] == LARGE
    assert [c for c in llm.stream("fourth", config=config)][0].response_metadata["model_name"] == LARGE
    llm = ChatBanditRouter(router=router, pin_model=True, cost_weight=1.0)
    assert llm.invoke("first", config={"configurable": {"thread_id": "u"}}).response_metadata["model_name"] == SMALL
    server.set_behavior("small", fail_status=500)
    opening = next(iter(llm.stream("second", config={"configurable": {"thread_id": "u"}}))).response_metadata
    assert (opening["model_name"], opening["failed"]) == (LARGE, [SMALL])


def test_a_pinned_thread_that_outgrows_its_models_context_window_is_rerouted(server: FakeLLMServer) -> None:
    small, large = cards(server.base_url)
    router = Router([replace(small, context_window=400), replace(large, context_window=100_000)],
                    encoder=hashed_bow, seed=0)
    llm = ChatBanditRouter(router=router, pin_model=True, cost_weight=1.0)
    config = {"configurable": {"thread_id": "t"}}
    assert llm.invoke("short", config=config).response_metadata["model_name"] == SMALL
    long = llm.invoke("word " * 600, config=config).response_metadata  # no longer fits the pinned model
    assert (long["model_name"], long["failed"]) == (LARGE, [])  # re-routed, not reported as a failure
    assert llm.invoke("short again", config=config).response_metadata["model_name"] == LARGE  # re-pinned


def test_with_options_gives_an_agent_step_its_own_dial_that_bind_tools_keeps(router: Router) -> None:
    llm = ChatBanditRouter(router=router, cost_weight=1.0)
    careful = llm.with_options(cost_weight=0.0, models=[LARGE]).bind_tools([square])
    assert careful.invoke("square 3").response_metadata["model_name"] == LARGE
    assert llm.bind(models=[LARGE]).bind_tools([square]).kwargs.keys() == {"tools"}  # why bind does not do
    with pytest.raises(ValidationError, match="cost_weight"):
        llm.with_options(cost_weight=3)
    with pytest.raises(ValidationError, match="Extra inputs"):
        llm.with_options(cost_wieght=0.0)
    run = {"configurable": {"models": [LARGE]}}
    assert llm.invoke("hi", config=run).response_metadata["model_name"] == LARGE  # per run, like cost_weight


def test_the_thread_id_is_not_a_call_argument_unless_threads_are_pinned(router: Router) -> None:
    """LangChain's cache key and traced invocation params hold the call's kwargs: an agent's thread id in them
    would keep two threads from sharing a cached answer."""
    cache = InMemoryCache()
    config = {"configurable": {"thread_id": "A"}}
    llm = ChatBanditRouter(router=router, cache=cache)
    first = llm.invoke("same question", config=config)
    again = llm.invoke("same question", config={"configurable": {"thread_id": "B"}})
    assert first.response_metadata.get("cached") is None and again.response_metadata["cached"] is True
    assert "thread_id" not in llm._get_invocation_params(**llm._configured(config, {}))
    pinned = ChatBanditRouter(router=router, pin_model=True)
    assert pinned._configured(config, {})["thread_id"] == "A"


def test_conversation_history_is_sent_as_openai_messages(llm: ChatBanditRouter, server: FakeLLMServer) -> None:
    history = [HumanMessage("hi", name="ann"), AIMessage([{"type": "text", "text": "hello"}]), HumanMessage("bye")]
    assert llm.invoke(history).content == "Echo: bye"
    assert server.requests[-1].messages == [{"role": "user", "name": "ann", "content": "hi"},
                                            {"role": "assistant", "content": "hello"},
                                            {"role": "user", "content": "bye"}]


def test_streaming_flag_streams_under_invoke(router: Router, server: FakeLLMServer) -> None:
    tokens: list[str] = []

    class Collect(BaseCallbackHandler):
        def on_llm_new_token(self, token: str, **kwargs: object) -> None:
            tokens.append(token)

    reply = ChatBanditRouter(router=router, streaming=True).invoke("via stream", config={"callbacks": [Collect()]})
    assert reply.content == "Echo: via stream" and "".join(tokens) == "Echo: via stream"
    assert server.requests[-1].params["stream"] is True
    assert router.pending(reply.response_metadata["route_id"]) and reply.usage_metadata["output_tokens"] == 3


def test_an_agent_with_a_structured_answer_runs_to_its_answer(llm: ChatBanditRouter, server: FakeLLMServer) -> None:
    """LangChain's create_agent with response_format: the answer is a forced tool call after the tools' results."""
    from langchain.agents import create_agent
    from langchain.agents.structured_output import ToolStrategy

    class Answer(BaseModel):
        value: int

    agent = create_agent(llm, tools=[square], response_format=ToolStrategy(Answer))
    result = agent.invoke({"messages": [("user", "What is 7 squared?")]})
    assert result["structured_response"] == Answer(value=7)  # the fake fills numbers with the prompt's first
    assert [m.content for m in result["messages"] if m.type == "tool"][0] == "49"
    assert [r.params.get("tool_choice") for r in server.requests] == ["required", "required"]

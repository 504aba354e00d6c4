"""Route ids reach what a LlamaIndex agent user sees: each step's streamed AgentStream events and its AgentOutput
carry the step's route in `raw["bandit_router"]`, so every step can be rated, also in a run that waits for a human."""

# no `from __future__ import annotations`: LlamaIndex finds a tool's Context parameter by its evaluated annotation
from typing import Any, AsyncIterator, Callable

import litellm
import pytest
from llama_index.core.agent.workflow import AgentOutput, AgentStream, AgentWorkflow, FunctionAgent, ReActAgent
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.workflow import Context, HumanResponseEvent, InputRequiredEvent

from llamaindex_bandit_router import BanditRouterLLM


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


async def confirm(ctx: Context, a: int) -> str:
    """Ask a human to confirm a number."""
    answer = await ctx.wait_for_event(HumanResponseEvent, waiter_event=InputRequiredEvent(prefix=f"{a}?"))
    return f"confirmed: {answer.response}"


AGENTS: dict[str, Callable[[BanditRouterLLM, bool], Any]] = {
    "function": lambda llm, streaming: FunctionAgent(tools=[multiply], llm=llm, streaming=streaming),
    "react": lambda llm, streaming: ReActAgent(tools=[multiply], llm=llm, streaming=streaming),
    "workflow": lambda llm, streaming: AgentWorkflow(agents=[FunctionAgent(tools=[multiply], llm=llm,
                                                                          streaming=streaming)]),
}


async def events_of(handler: Any, answer: str | None = None) -> list[Any]:
    """The events of an agent run, answering its requests for input with `answer`."""
    events = []
    async for event in handler.stream_events():
        events.append(event)
        if isinstance(event, InputRequiredEvent):
            handler.ctx.send_event(HumanResponseEvent(response=answer))
    await handler
    return events


def step_routes(events: list[Any]) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """The routes streamed per step (route_id -> each AgentStream's route) and each AgentOutput's route_id, checking
    that its raw and its message name the same route."""
    streamed: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        if isinstance(event, AgentStream):
            route = event.raw["bandit_router"]
            streamed.setdefault(route["route_id"], []).append(route)
    outputs = [e for e in events if isinstance(e, AgentOutput)]
    assert all(o.raw["bandit_router"]["route_id"] == o.response.additional_kwargs["route_id"] for o in outputs)
    return streamed, [o.response.additional_kwargs["route_id"] for o in outputs]


@pytest.mark.parametrize("kind", sorted(AGENTS))
async def test_every_streamed_agent_event_names_the_route_of_its_step(llm: BanditRouterLLM, kind: str) -> None:
    with llm.record_routes() as routes:
        events = await events_of(AGENTS[kind](llm, True).run("What is 6 times 6?"))
    streamed, outputs = step_routes(events)
    assert list(streamed) == outputs == [r["route_id"] for r in routes]  # one route per step, in order
    assert len(outputs) == (1 if kind == "react" else 2)  # the fake server's ReAct answer is final at once
    for per_event in streamed.values():  # a step's last event also carries its cost
        assert per_event[-1]["cost"] > 0 and per_event[-1]["model"] == per_event[0]["model"]
    for route_id in streamed:
        llm.feedback(route_id, 1.0)


@pytest.mark.parametrize("kind", ["function", "workflow"])
async def test_agent_outputs_name_their_route_without_streaming(llm: BanditRouterLLM, kind: str) -> None:
    with llm.record_routes() as routes:
        events = await events_of(AGENTS[kind](llm, False).run("What is 6 times 6?"))
    streamed, outputs = step_routes(events)
    assert not streamed and outputs == [r["route_id"] for r in routes] and len(outputs) == 2


def test_raw_responses_carry_the_route_and_stay_litellm_responses(llm: BanditRouterLLM) -> None:
    reply = llm.chat([ChatMessage(role="user", content="hello")])
    assert reply.raw["bandit_router"] == reply.additional_kwargs and reply.raw.choices[0].message.content
    assert llm.complete("hello").raw["bandit_router"]["route_id"]
    chunks = list(llm.stream_chat([ChatMessage(role="user", content="hello there")]))
    assert {c.raw["bandit_router"]["route_id"] for c in chunks} == {chunks[0].additional_kwargs["route_id"]}
    assert chunks[-1].raw["bandit_router"]["cost"] > 0 and "cost" not in chunks[0].raw["bandit_router"]
    assert chunks[-1].raw.usage.total_tokens > 0


async def test_a_stream_that_sends_nothing_still_names_its_route(llm: BanditRouterLLM,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    async def nothing() -> AsyncIterator[Any]:
        return
        yield

    async def empty(**kwargs: Any) -> AsyncIterator[Any]:
        return nothing()

    monkeypatch.setattr(litellm, "acompletion", empty)
    [last] = [r async for r in await llm.astream_chat([ChatMessage(role="user", content="hello")])]
    assert last.raw["bandit_router"]["route_id"] == last.additional_kwargs["route_id"]


async def test_a_run_that_waits_for_a_human_has_one_run_id_and_every_step_rated(llm: BanditRouterLLM) -> None:
    agent = FunctionAgent(tools=[confirm], llm=llm, streaming=True)
    with llm.record_routes() as routes:
        handler = agent.run("Confirm 5")
        events = await events_of(handler, answer="yes")
    assert str(await handler) == "Tool result: confirmed: yes"
    [waiting] = [i for i, e in enumerate(events) if isinstance(e, InputRequiredEvent)]
    streamed, outputs = step_routes(events)
    assert list(streamed) == outputs == [r["route_id"] for r in routes] and len(outputs) == 2
    after = step_routes(events[waiting:])[1]
    assert after == outputs[1:]  # the step after the human's answer is routed and named like the first
    for route_id in outputs:  # one handler (one run_id) holds both steps: each can be rated
        llm.feedback(route_id, 1.0)

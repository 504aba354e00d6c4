"""BanditRouterLLM's streams route when they are first read, as LlamaIndex's own LLMs send their request then: a
stream asked for and never read holds no budget and leaves no decision waiting (it used to keep both until
pending_ttl, a day); one read to its end is recorded and rated as before; one closed part-way is charged its worst
case once, as the core's routed streams are."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from bandit_router import Budget, BudgetExceededError, ConfigError, Router
from bandit_router.testing import FakeLLMServer
from llamaindex_bandit_router import BanditRouterLLM

from .conftest import NO_RETRIES, bag_of_words, cards

PROMPT = "please tell me a little more about routers"
METHODS = ["stream_chat", "astream_chat", "stream_complete", "astream_complete"]


@pytest.fixture
def budget() -> Budget:
    return Budget(1.0, pacer="none")


@pytest.fixture
def llm(server: FakeLLMServer, budget: Budget, tmp_path: Path) -> BanditRouterLLM:
    router = Router(cards(server), encoder=bag_of_words, seed=0, budget=budget, log=tmp_path / "log.sqlite")
    return BanditRouterLLM(router, call_kwargs=NO_RETRIES)


async def ask(llm: BanditRouterLLM, method: str, **kwargs: Any) -> Any:
    """The stream `method` returns for PROMPT, not read yet."""
    prompt = [ChatMessage(role=MessageRole.USER, content=PROMPT)] if method.endswith("chat") else PROMPT
    stream = getattr(llm, method)(prompt, **kwargs)
    return await stream if method.startswith("a") else stream


async def first(stream: Any) -> Any:
    return await anext(stream) if inspect.isasyncgen(stream) else next(stream)


async def read(stream: Any) -> list[Any]:
    return [r async for r in stream] if inspect.isasyncgen(stream) else list(stream)


async def close(stream: Any) -> None:
    """Close `stream`, then let the event loop close the async generators LlamaIndex's wrappers dropped (as it
    closes any async generator dropped part-way)."""
    if inspect.isasyncgen(stream):
        await stream.aclose()
        for _ in range(10):
            await asyncio.sleep(0)
    else:
        stream.close()


def assert_nothing_held(llm: BanditRouterLLM, budget: Budget, server: FakeLLMServer) -> None:
    router = llm.router
    assert budget.reserved() == 0.0 and budget.total_spent() == 0.0 and not router.gate.held
    assert not router.ledger.waiting and not router.ledger.closed and not list(router.log.rows())
    assert not server.requests


@pytest.mark.parametrize("method", METHODS)
async def test_a_stream_never_read_holds_nothing_and_leaves_no_decision(method: str, llm: BanditRouterLLM,
                                                                       budget: Budget,
                                                                       server: FakeLLMServer) -> None:
    with llm.record_routes() as routes:
        stream = await ask(llm, method)
        assert_nothing_held(llm, budget, server)
    await close(stream)
    assert_nothing_held(llm, budget, server)
    assert routes == []


@pytest.mark.parametrize("method", METHODS)
async def test_a_stream_read_to_its_end_is_recorded_and_rated_as_before(method: str, llm: BanditRouterLLM,
                                                                       budget: Budget) -> None:
    """Recorded in the record_routes() block it was asked for in, also when read after the block."""
    with llm.record_routes() as routes:
        stream = await ask(llm, method)
    responses = await read(stream)
    assert responses[-1].text.startswith("Echo: please tell me") if "complete" in method \
        else responses[-1].message.content.startswith("Echo: please tell me")
    [route] = routes
    assert route == responses[-1].additional_kwargs and route["cost"] > 0
    assert budget.total_spent() == pytest.approx(route["cost"], rel=1e-12) and budget.reserved() == 0.0
    assert llm.router.pending(route["route_id"]) and [r["status"] for r in llm.router.log.rows()] == ["served"]
    llm.feedback(route["route_id"], 1.0)
    assert not llm.router.pending(route["route_id"])


@pytest.mark.parametrize("method", METHODS)
async def test_a_stream_closed_part_way_is_charged_its_worst_case_once(method: str, llm: BanditRouterLLM,
                                                                      budget: Budget) -> None:
    with llm.record_routes() as routes:
        stream = await ask(llm, method)
        route_id = (await first(stream)).additional_kwargs["route_id"]
        held = budget.reserved()
        assert held > 0 and budget.total_spent() == 0.0
        await close(stream)
    assert budget.reserved() == 0.0 and budget.total_spent() == held
    await close(stream)  # closing again changes nothing
    assert budget.total_spent() == held and sum(llm.router.failures.values()) == 0  # not the model's failure
    assert [r["route_id"] for r in routes] == [route_id] and routes[0]["cost"] == held  # what it was charged
    llm.feedback(route_id, 0.5)  # a partial answer can still be rated


@pytest.mark.parametrize("method", ["stream_chat", "astream_chat"])
async def test_routing_errors_come_at_the_first_read_and_argument_errors_at_once(method: str, server: FakeLLMServer,
                                                                                  tmp_path: Path) -> None:
    """As LlamaIndex's own LLMs raise their request's errors when their stream is read."""
    budget = Budget(1e-9, pacer="none")  # too small for any call
    llm = BanditRouterLLM(Router(cards(server), encoder=bag_of_words, seed=0, budget=budget,
                                 log=tmp_path / "log.sqlite"), call_kwargs=NO_RETRIES)
    with pytest.raises(ConfigError, match="temprature"):
        await ask(llm, method, temprature=0.2)
    stream = await ask(llm, method)
    with pytest.raises(BudgetExceededError):
        await first(stream)
    assert_nothing_held(llm, budget, server)

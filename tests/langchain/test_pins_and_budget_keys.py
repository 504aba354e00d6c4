"""ChatBanditRouter: a pinned thread whose model leaves the router is re-routed and re-pinned (a model replaced under
the same name keeps its pin), and budget keys per instance (`with_options`), per run (`configurable`) and per call."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import ValidationError

from bandit_router import ConfigError, Router
from bandit_router.budget import Budget
from bandit_router.testing import FakeLLMServer
from langchain_bandit_router import ChatBanditRouter

from .conftest import LARGE, SMALL, cards, hashed_bow

THREAD = {"configurable": {"thread_id": "t1"}}


@tool
def square(x: int) -> int:
    """Square a number."""
    return x * x


def turn(agent: Any, text: str, config: dict[str, Any]) -> set[str]:
    """Models that served one turn of an agent (its tool call and its answer)."""
    messages = agent.invoke({"messages": [("user", text)]}, config=config)["messages"]
    return {m.response_metadata["model_name"] for m in messages[-3:] if m.type == "ai"}


def test_an_agents_pinned_thread_is_rerouted_and_repinned_after_its_model_is_removed(router: Router) -> None:
    """The trial's repro: create_agent with a checkpointer, turn 1, remove the pinned model, turn 2."""
    llm = ChatBanditRouter(router=router, pin_model=True, cost_weight=1.0)  # the first choice is the cheap model
    agent = create_agent(llm, tools=[square], checkpointer=InMemorySaver())
    assert turn(agent, "square 3", THREAD) == {SMALL}
    router.remove_model(SMALL)
    assert turn(agent, "square 4", THREAD) == {LARGE}  # was: ConfigError, unknown names ['openai/small']
    router.add_model(cards(router.models[LARGE].api_base)[0])  # back, and cheaper: the thread stays re-pinned
    assert turn(agent, "square 5", THREAD) == {LARGE}


@pytest.mark.parametrize("way", ["invoke", "stream", "ainvoke", "astream"])
def test_a_plain_chats_pinned_thread_is_rerouted_after_its_model_is_removed(router: Router, way: str) -> None:
    llm = ChatBanditRouter(router=router, pin_model=True, cost_weight=1.0)

    def call(text: str) -> dict[str, Any]:
        if way == "invoke":
            return llm.invoke(text, config=THREAD).response_metadata
        if way == "stream":
            return list(llm.stream(text, config=THREAD))[0].response_metadata

        async def run() -> dict[str, Any]:
            if way == "ainvoke":
                return (await llm.ainvoke(text, config=THREAD)).response_metadata
            return [c async for c in llm.astream(text, config=THREAD)][0].response_metadata
        return asyncio.run(run())

    assert call("first")["model_name"] == SMALL
    router.remove_model(SMALL)
    second = call("second")
    assert (second["model_name"], second["failed"]) == (LARGE, [])  # re-routed, not reported as a failure
    assert llm._pins["t1"] == LARGE


def test_a_pinned_model_removed_while_the_call_is_routed_is_rerouted(router: Router,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Another thread removes the model between the wrapper reading the pin and the router routing the call."""
    llm = ChatBanditRouter(router=router, pin_model=True, cost_weight=1.0)
    assert llm.invoke("first", config=THREAD).response_metadata["model_name"] == SMALL
    read_pin = ChatBanditRouter._call

    def then_removed(self: ChatBanditRouter, *args: Any) -> Any:
        call = read_pin(self, *args)
        router.remove_model(SMALL)
        return call

    monkeypatch.setattr(ChatBanditRouter, "_call", then_removed)
    assert llm.invoke("second", config=THREAD).response_metadata["model_name"] == LARGE


def test_another_config_error_of_a_pinned_call_is_raised_without_rerouting(router: Router,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    llm = ChatBanditRouter(router=router, pin_model=True, cost_weight=1.0)
    assert llm.invoke("first", config=THREAD).response_metadata["model_name"] == SMALL
    routed: list[Any] = []
    complete = router.complete
    monkeypatch.setattr(router, "complete", lambda *args, **kwargs: routed.append(kwargs) or complete(*args, **kwargs))
    with pytest.raises(ConfigError, match="task"):
        llm.invoke("second", config=THREAD, task="no-such-task")  # refused by the router: the router has no tasks
    assert [kwargs["models"] for kwargs in routed] == [[SMALL]]  # the pinned model was not the cause: no retry


def test_a_model_replaced_under_its_name_keeps_its_pinned_threads(router: Router, server: FakeLLMServer) -> None:
    llm = ChatBanditRouter(router=router, pin_model=True, cost_weight=1.0)
    assert llm.invoke("first", config=THREAD).response_metadata["model_name"] == SMALL
    router.replace_model(replace(router.models[SMALL], output_cost_per_token=1e-4))  # now the dearest by far
    assert llm.invoke("second", config=THREAD).response_metadata["model_name"] == SMALL
    assert llm.invoke("elsewhere", config={"configurable": {"thread_id": "t2"}}).response_metadata[
        "model_name"] == LARGE  # a new thread does see the new price


@pytest.fixture
def budgeted(server: FakeLLMServer) -> Router:
    return Router(cards(server.base_url), encoder=hashed_bow, seed=0,
                  budget=Budget(5.0, period=86_400, key_limit=1.0, pacer="none"))


def accounts(router: Router, *keys: str) -> list[float]:
    """Spend of the global account, then of each key's."""
    assert router.budget is not None
    return [router.budget.spent(), *(router.budget.spent(key) for key in keys)]


def test_with_options_budget_key_charges_an_agent_users_account(budgeted: Router) -> None:
    llm = ChatBanditRouter(router=budgeted).with_options(budget_key="u1")  # was: a pydantic ValidationError
    assert llm.bind_tools([square]).bound.budget_key == "u1"  # what an agent calls keeps the option
    agent = create_agent(llm, tools=[square])
    agent.invoke({"messages": [("user", "square 3")]})
    total, user = accounts(budgeted, "u1")
    assert total > 0 and user == pytest.approx(total)


def test_configurable_budget_key_charges_a_runs_account(budgeted: Router) -> None:
    agent = create_agent(ChatBanditRouter(router=budgeted), tools=[square])
    agent.invoke({"messages": [("user", "square 3")]}, config={"configurable": {"budget_key": "u1"}})
    total, user = accounts(budgeted, "u1")
    assert total > 0 and user == pytest.approx(total)  # was: 0.0, the global account only


def test_the_call_then_the_run_then_the_instance_budget_key_wins(budgeted: Router) -> None:
    llm = ChatBanditRouter(router=budgeted, budget_key="instance")
    run = {"configurable": {"budget_key": "run"}}
    llm.invoke("one", budget_key="call", config=run)
    assert accounts(budgeted, "call", "run", "instance")[2:] == [0.0, 0.0]
    llm.invoke("two", config=run)
    assert accounts(budgeted, "instance")[1] == 0.0
    llm.invoke("three")
    total, *keys = accounts(budgeted, "call", "run", "instance")
    assert all(key > 0 for key in keys) and sum(keys) == pytest.approx(total)


def test_an_unknown_configurable_key_is_ignored_as_langchain_ignores_it(budgeted: Router) -> None:
    ChatBanditRouter(router=budgeted).invoke("hi", config={"configurable": {"budget_kye": "u1"}})
    assert accounts(budgeted, "u1")[1:] == [0.0] and accounts(budgeted)[0] > 0


def test_a_budget_key_must_be_a_non_empty_string(budgeted: Router) -> None:
    llm = ChatBanditRouter(router=budgeted)
    with pytest.raises(ValidationError, match="budget_key must be a non-empty string"):
        llm.with_options(budget_key=42)  # a ledger saved as JSON would restore it as "42": another account
    with pytest.raises(ConfigError, match="budget_key must be a non-empty string"):
        llm.invoke("hi", config={"configurable": {"budget_key": ""}})
    assert accounts(budgeted) == [0.0]

"""Provider failures through the LlamaIndex wrapper: the core Router's fallback serves the call from the next-best
model and records the failure; when every model fails, one AllModelsFailedError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import litellm
import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from bandit_router import AllModelsFailedError, Router
from bandit_router.testing import FakeLLMServer
from llamaindex_bandit_router import BanditRouterLLM

from .conftest import BIG, CHEAP, NO_RETRIES, bag_of_words, cards
from .test_llm import call

TIMEOUT = 2.0  # seconds; the slow model takes 10


@pytest.fixture
def llm(server: FakeLLMServer, tmp_path: Path) -> BanditRouterLLM:
    """Routes every call to the cheap model first (policy 'cheapest'), so the big one is the fallback."""
    router = Router(cards(server), policy="cheapest", encoder=bag_of_words, seed=0, log=tmp_path / "log.sqlite")
    return BanditRouterLLM(router, call_kwargs=NO_RETRIES)


def assert_served_by_big_after_cheap_failed(llm: BanditRouterLLM, info: dict[str, Any]) -> None:
    assert (info["model"], info["failed"]) == (BIG, [CHEAP])
    assert llm.router.failures == {CHEAP: 1, BIG: 0}
    [row] = llm.router.log.rows()
    assert (row["model"], row["failed"], row["status"]) == (BIG, [CHEAP], "served")
    assert llm.router.pending(info["route_id"])  # feedback now rewards the model that answered
    llm.feedback(info["route_id"], 1.0)


@pytest.mark.parametrize("method", ["chat", "achat", "complete", "acomplete", "stream_chat", "astream_chat",
                                    "stream_complete", "astream_complete"])
async def test_server_error_on_the_chosen_model_is_served_by_the_other(method: str, llm: BanditRouterLLM,
                                                                       server: FakeLLMServer) -> None:
    server.set_behavior("cheap", fail_status=500)
    text, info, _ = await call(llm, method)
    assert text.startswith("Echo:")
    assert [r.model for r in server.requests] == ["cheap", "big"]
    assert_served_by_big_after_cheap_failed(llm, info)


@pytest.mark.parametrize("method", ["chat", "astream_chat"])
async def test_timeout_on_the_chosen_model_is_served_by_the_other(method: str, llm: BanditRouterLLM,
                                                                  server: FakeLLMServer) -> None:
    server.set_behavior("cheap", delay=10.0)
    text, info, _ = await call(llm, method, timeout=TIMEOUT)
    assert text.startswith("Echo:")
    assert_served_by_big_after_cheap_failed(llm, info)


async def test_rate_limit_during_an_agent_step_falls_back(llm: BanditRouterLLM, server: FakeLLMServer) -> None:
    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        return a * b

    server.set_behavior("cheap", fail_status=429, fail_times=1)  # only the agent's first step fails
    with llm.record_routes() as routes:
        result = await FunctionAgent(tools=[multiply], llm=llm).run("What is 3 times 3?")
    assert str(result) == "Tool result: 9"
    assert [(r["model"], r["failed"]) for r in routes] == [(BIG, [CHEAP]), (CHEAP, [])]
    assert llm.router.failures == {CHEAP: 1, BIG: 0}


@pytest.mark.parametrize("method", ["chat", "acomplete", "stream_chat", "astream_complete"])
async def test_all_models_failing_raises_one_clear_error(method: str, llm: BanditRouterLLM,
                                                         server: FakeLLMServer) -> None:
    server.set_behavior("cheap", fail_status=500)
    server.set_behavior("big", fail_status=503)
    with pytest.raises(AllModelsFailedError, match="no model could serve the request after 2 attempt") as caught:
        await call(llm, method)
    assert set(caught.value.failures) == {CHEAP, BIG}
    assert isinstance(caught.value.failures[BIG], litellm.ServiceUnavailableError)
    assert llm.router.failures == {CHEAP: 1, BIG: 1}
    [row] = llm.router.log.rows()
    assert row["status"] == "failed"


def test_an_invalid_request_is_not_retried_and_is_counted(llm: BanditRouterLLM, server: FakeLLMServer) -> None:
    server.set_behavior("cheap", fail_status=422)
    with pytest.raises(litellm.BadRequestError):
        llm.chat([ChatMessage(role=MessageRole.USER, content="hello")])
    assert [r.model for r in server.requests] == ["cheap"] and llm.router.failures == {CHEAP: 1, BIG: 0}
    [row] = llm.router.log.rows()
    assert (row["status"], row["error"]) == ("failed", "BadRequestError")


def test_a_refused_key_falls_back(llm: BanditRouterLLM, server: FakeLLMServer) -> None:
    server.set_behavior("cheap", fail_status=401)
    info = llm.chat([ChatMessage(role=MessageRole.USER, content="hello")]).additional_kwargs
    assert_served_by_big_after_cheap_failed(llm, info)

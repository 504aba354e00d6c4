"""Provider failures: the chosen model returns 500s or times out -> the call is served by the other model and the
failure is recorded; every model failing -> one AllModelsFailedError."""

from __future__ import annotations

import time

import litellm
import pytest

from bandit_router import AllModelsFailedError, Router
from bandit_router.testing import FakeLLMServer
from langchain_bandit_router import ChatBanditRouter

from .conftest import LARGE, SMALL

MODES = ["invoke", "ainvoke", "stream", "astream"]


async def ask(llm: ChatBanditRouter, mode: str, prompt: str):
    """The reply to `prompt` through one of the four call paths (streams aggregated)."""
    if mode == "invoke":
        return llm.invoke(prompt)
    if mode == "ainvoke":
        return await llm.ainvoke(prompt)
    chunks = list(llm.stream(prompt)) if mode == "stream" else [c async for c in llm.astream(prompt)]
    return sum(chunks[1:], chunks[0])


@pytest.fixture
def prefers_large(router: Router) -> Router:
    """The router after ratings that make the large model its first choice (10 each: the default policy values
    a model rated fewer times at the best rating)."""
    for i in range(10):
        router.observe(f"question {i}", LARGE, 1.0)
        router.observe(f"question {i}", SMALL, 0.0)
    assert router.route("question 0").model == LARGE
    return router


@pytest.mark.parametrize("mode", MODES)
async def test_server_error_falls_back_and_is_recorded(prefers_large: Router, server: FakeLLMServer,
                                                       mode: str) -> None:
    server.set_behavior("large", fail_status=500)
    reply = await ask(ChatBanditRouter(router=prefers_large), mode, "question 1")
    assert reply.content == "Echo: question 1"
    meta = reply.response_metadata
    assert (meta["model_name"], meta["failed"]) == (SMALL, [LARGE])
    assert meta["propensity"] < 0.5  # the propensity of the model that served, not of the first choice
    assert prefers_large.failures == {SMALL: 0, LARGE: 1}
    assert [r.model for r in server.requests] == ["large", "small"]  # no retry of the failed model
    assert prefers_large.pending(meta["route_id"])  # feedback now rewards the model that answered


@pytest.mark.parametrize("mode", MODES)
async def test_timeout_falls_back(prefers_large: Router, server: FakeLLMServer, mode: str) -> None:
    server.set_behavior("large", delay=5.0)
    started = time.monotonic()
    reply = await ask(ChatBanditRouter(router=prefers_large, timeout=0.5), mode, "question 2")
    assert time.monotonic() - started < 4.0
    assert (reply.content, reply.response_metadata["model_name"]) == ("Echo: question 2", SMALL)
    assert reply.response_metadata["failed"] == [LARGE] and prefers_large.failures[LARGE] == 1


@pytest.mark.parametrize("status", [429, 503, 401, 403])  # 401/403: that provider refused its key
def test_rate_limit_unavailable_and_refused_key_fall_back(prefers_large: Router, server: FakeLLMServer,
                                                          status: int) -> None:
    server.set_behavior("large", fail_status=status)
    meta = ChatBanditRouter(router=prefers_large).invoke("question 3").response_metadata
    assert (meta["model_name"], meta["failed"]) == (SMALL, [LARGE]) and prefers_large.failures[LARGE] == 1


@pytest.mark.parametrize("mode", MODES)
async def test_all_models_failing_is_one_clear_error(router: Router, server: FakeLLMServer, mode: str) -> None:
    for model in ("small", "large"):
        server.set_behavior(model, fail_status=500)
    with pytest.raises(AllModelsFailedError, match="no model could serve") as caught:
        await ask(ChatBanditRouter(router=router), mode, "hello")
    assert set(caught.value.failures) == {SMALL, LARGE}
    assert all(isinstance(e, litellm.InternalServerError) for e in caught.value.failures.values())
    assert router.failures == {SMALL: 1, LARGE: 1}


def test_errors_that_another_model_cannot_fix_are_raised_counted_and_logged(prefers_large: Router,
                                                                           server: FakeLLMServer) -> None:
    server.set_behavior("large", fail_status=500)
    server.set_behavior("small", fail_status=422)  # a request the provider finds invalid
    with pytest.raises(litellm.BadRequestError) as caught:
        ChatBanditRouter(router=prefers_large).invoke("hello")
    assert [r.model for r in server.requests] == ["large", "small"]
    [note] = caught.value.__notes__
    assert note.startswith(f"bandit-router: the request was routed to {SMALL}; {LARGE} had failed first: "
                           "InternalServerError: ")
    assert prefers_large.failures == {SMALL: 1, LARGE: 1}

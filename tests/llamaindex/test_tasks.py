"""Task hints through BanditRouterLLM: the instance's task and per-call overrides reach the policy on every call
method as a one-hot beside the scaled prompt vector; undeclared tasks are refused and `task` never reaches LiteLLM."""

from __future__ import annotations

import numpy as np
import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from bandit_router import ConfigError, Router, TaskHints
from bandit_router.testing import FakeLLMServer
from llamaindex_bandit_router import BanditRouterLLM

from ..fakes import record_litellm_calls, record_policy_vectors
from .conftest import NO_RETRIES, bag_of_words, cards
from .test_llm import METHODS, PROMPT, call

DIM = 16  # bag_of_words' default width
TASKS = ["retrieve", "rag-answer"]
TEXT_WEIGHT = 0.5  # not the default, so a router ignoring text_weight fails
RETRIEVE, ANSWER, NONE = [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]
MESSAGES = [ChatMessage(role=MessageRole.USER, content=PROMPT)]


@pytest.fixture
def tasked(server: FakeLLMServer) -> Router:
    return Router(cards(server), encoder=bag_of_words, seed=0, tasks=TaskHints(TASKS, TEXT_WEIGHT))


@pytest.fixture
def seen(tasked: Router, monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:
    """The vectors the policy scores, one per routed call, oldest first."""
    return record_policy_vectors(tasked, monkeypatch)


def hint(x: np.ndarray) -> list[float]:
    """The task one-hot of a policy vector, after checking its prompt part is text_weight * the encoding."""
    assert x.shape == (DIM + len(TASKS),)
    np.testing.assert_allclose(x[:DIM], TEXT_WEIGHT * bag_of_words(PROMPT), atol=1e-6)
    return x[DIM:].tolist()


@pytest.mark.parametrize("method", METHODS)
async def test_every_method_carries_the_instance_task_and_per_call_override(
        method: str, tasked: Router, seen: list[np.ndarray]) -> None:
    llm = BanditRouterLLM(tasked, task="rag-answer", call_kwargs=NO_RETRIES)
    text, info, _ = await call(llm, method)
    _, override, _ = await call(llm, method, task="retrieve")
    _, untasked, _ = await call(BanditRouterLLM(tasked, call_kwargs=NO_RETRIES), method)
    assert text == f"Echo: {PROMPT}"
    assert (info["task"], override["task"], untasked["task"]) == ("rag-answer", "retrieve", None)
    assert [hint(x) for x in seen] == [ANSWER, RETRIEVE, NONE]
    np.testing.assert_allclose(seen[0], tasked.vectors([PROMPT], ["rag-answer"])[0], atol=1e-6)


def test_override_leaves_the_instance_task(tasked: Router, seen: list[np.ndarray]) -> None:
    llm = BanditRouterLLM(tasked, task="retrieve", call_kwargs=NO_RETRIES)
    llm.complete(PROMPT, task="rag-answer")
    llm.chat(MESSAGES)
    llm.chat(MESSAGES, task=None)  # this call on the prompt alone
    assert llm.task == "retrieve"
    assert [hint(x) for x in seen] == [ANSWER, RETRIEVE, NONE]


def test_feedback_learns_under_the_task(tasked: Router, monkeypatch: pytest.MonkeyPatch) -> None:
    updates: list[np.ndarray] = []
    learn = tasked.policy.learn
    monkeypatch.setattr(tasked.policy, "learn", lambda outcomes: (updates.extend(np.array(o.vector) for o in outcomes),
                                                                  learn(outcomes)))
    llm = BanditRouterLLM(tasked, task="rag-answer", call_kwargs=NO_RETRIES)
    llm.feedback(llm.chat(MESSAGES).additional_kwargs["route_id"], 1.0)
    assert [hint(x) for x in updates] == [ANSWER]


def test_undeclared_tasks_are_rejected(tasked: Router, router: Router, server: FakeLLMServer) -> None:
    with pytest.raises(ConfigError, match="poetry"):
        BanditRouterLLM(tasked, task="poetry")
    with pytest.raises(ConfigError, match="declares no tasks"):
        BanditRouterLLM(router, task="rag-answer")
    llm = BanditRouterLLM(tasked, call_kwargs=NO_RETRIES)
    with pytest.raises(ConfigError, match="poetry"):
        llm.chat(MESSAGES, task="poetry")
    with pytest.raises(ConfigError, match="poetry"):
        llm.complete(PROMPT, task="poetry")
    with pytest.raises(ConfigError, match="declares no tasks"):
        BanditRouterLLM(router).chat(MESSAGES, task="rag-answer")
    assert server.requests == []  # refused before any model was called


async def test_task_is_not_sent_to_litellm(tasked: Router, server: FakeLLMServer,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    sent = record_litellm_calls(monkeypatch)
    llm = BanditRouterLLM(tasked, task="rag-answer", call_kwargs=NO_RETRIES)
    llm.chat(MESSAGES, task="retrieve")
    list(llm.stream_chat(MESSAGES))
    await llm.achat(MESSAGES, task="retrieve")
    [r async for r in await llm.astream_chat(MESSAGES)]
    assert len(sent) == len(server.requests) == 4
    assert not any("task" in kw for kw in sent)
    assert not any("task" in r.params for r in server.requests)


def test_a_task_in_call_kwargs_is_the_llms_task_and_a_different_one_beside_it_is_refused(tasked: Router) -> None:
    llm = BanditRouterLLM(tasked, call_kwargs={**NO_RETRIES, "task": "retrieve"})
    assert llm.task == "retrieve" and "task" not in llm.call_kwargs  # it used to beat task= silently
    assert llm.with_options(call_kwargs={"task": "rag-answer"}).task == "rag-answer"
    with pytest.raises(ConfigError, match="task is given twice with different values"):
        BanditRouterLLM(tasked, task="rag-answer", call_kwargs={"task": "retrieve"})

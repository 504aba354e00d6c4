"""Task hints through ChatBanditRouter: the instance's task, per-call overrides (kwarg, bind, configurable) and
every call path reach the policy as a one-hot beside the scaled prompt vector; undeclared tasks are refused and
`task` never reaches LiteLLM."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from bandit_router import ConfigError, Router, TaskHints
from bandit_router.testing import FakeLLMServer
from langchain_bandit_router import ChatBanditRouter

from ..fakes import record_litellm_calls, record_policy_vectors
from .conftest import DIM, cards, hashed_bow

TASKS = ["code", "chat"]
TEXT_WEIGHT = 0.5  # not the default, so a router ignoring text_weight fails
CODE, CHAT, NONE = [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]
PROMPT = "write a sort function"


@pytest.fixture
def tasked(server: FakeLLMServer) -> Router:
    return Router(cards(server.base_url), encoder=hashed_bow, seed=0, tasks=TaskHints(TASKS, TEXT_WEIGHT))


@pytest.fixture
def seen(tasked: Router, monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:
    """The vectors the policy scores, one per routed call, oldest first."""
    return record_policy_vectors(tasked, monkeypatch)


def hint(x: np.ndarray, prompt: str = PROMPT) -> list[float]:
    """The task one-hot of a policy vector, after checking its prompt part is text_weight * the encoding."""
    assert x.shape == (DIM + len(TASKS),)
    np.testing.assert_allclose(x[:DIM], TEXT_WEIGHT * hashed_bow(prompt), atol=1e-6)
    return x[DIM:].tolist()


def test_instance_task_reaches_the_policy(tasked: Router, seen: list[np.ndarray]) -> None:
    assert tasked.dim == DIM + 2
    tasked_reply = ChatBanditRouter(router=tasked, task="code").invoke(PROMPT)
    plain_reply = ChatBanditRouter(router=tasked).invoke(PROMPT)
    assert [hint(x) for x in seen] == [CODE, NONE]
    assert (tasked_reply.response_metadata["task"], plain_reply.response_metadata["task"]) == ("code", None)
    np.testing.assert_allclose(seen[0], tasked.vectors([PROMPT], ["code"])[0], atol=1e-6)


def test_per_call_bind_and_configurable_tasks_override_the_field(tasked: Router, seen: list[np.ndarray]) -> None:
    llm = ChatBanditRouter(router=tasked, task="code")
    chat = {"configurable": {"task": "chat"}}
    llm.invoke(PROMPT, task="chat")
    llm.bind(task="chat").invoke(PROMPT)
    llm.invoke(PROMPT, config=chat)
    llm.invoke(PROMPT, config=chat, task="code")  # the call's kwarg beats the run config
    llm.invoke(PROMPT)  # the field is untouched by the overrides
    llm.invoke(PROMPT, task=None)  # this call on the prompt alone
    assert [hint(x) for x in seen] == [CHAT, CHAT, CHAT, CODE, CODE, NONE]


def test_stream_carries_the_task(tasked: Router, seen: list[np.ndarray]) -> None:
    llm = ChatBanditRouter(router=tasked, task="code")
    chunks = list(llm.stream(PROMPT, task="chat"))
    list(llm.stream(PROMPT))
    assert "".join(str(c.content) for c in chunks) == f"Echo: {PROMPT}"
    assert [hint(x) for x in seen] == [CHAT, CODE]


async def test_async_paths_carry_the_task(tasked: Router, seen: list[np.ndarray]) -> None:
    llm = ChatBanditRouter(router=tasked, task="code")
    await llm.ainvoke(PROMPT, task="chat")
    [c async for c in llm.astream(PROMPT, config={"configurable": {"task": "chat"}})]
    await llm.ainvoke(PROMPT)
    assert [hint(x) for x in seen] == [CHAT, CHAT, CODE]


def test_feedback_learns_under_the_task(tasked: Router, monkeypatch: pytest.MonkeyPatch) -> None:
    updates: list[np.ndarray] = []
    learn = tasked.policy.learn
    monkeypatch.setattr(tasked.policy, "learn", lambda outcomes: (updates.extend(np.array(o.vector) for o in outcomes),
                                                                  learn(outcomes)))
    message = ChatBanditRouter(router=tasked, task="chat").invoke(PROMPT)
    tasked.feedback(message.response_metadata["route_id"], 1.0)
    assert [hint(x) for x in updates] == [CHAT]


def test_undeclared_tasks_are_rejected(tasked: Router, router: Router, server: FakeLLMServer) -> None:
    with pytest.raises(ValidationError, match="poetry"):  # pydantic wraps the validator's ConfigError
        ChatBanditRouter(router=tasked, task="poetry")
    with pytest.raises(ValidationError, match="declares no tasks"):
        ChatBanditRouter(router=router, task="code")
    llm = ChatBanditRouter(router=tasked)
    with pytest.raises(ConfigError, match="poetry"):
        llm.invoke(PROMPT, task="poetry")
    with pytest.raises(ConfigError, match="poetry"):
        list(llm.bind(task="poetry").stream(PROMPT))
    with pytest.raises(ConfigError, match="poetry"):
        llm.invoke(PROMPT, config={"configurable": {"task": "poetry"}})
    with pytest.raises(ConfigError, match="declares no tasks"):
        ChatBanditRouter(router=router).invoke(PROMPT, task="code")
    assert server.requests == []  # refused before any model was called


async def test_task_is_not_sent_to_litellm(tasked: Router, server: FakeLLMServer,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    sent = record_litellm_calls(monkeypatch)
    llm = ChatBanditRouter(router=tasked, task="code")
    llm.invoke(PROMPT, task="chat")
    list(llm.bind(task="chat").stream(PROMPT))
    await llm.ainvoke(PROMPT, config={"configurable": {"task": "chat"}})
    [c async for c in llm.astream(PROMPT)]
    assert len(sent) == len(server.requests) == 4
    assert not any("task" in kw for kw in sent)
    assert not any("task" in r.params for r in server.requests)

"""Per-user budgets through BanditRouterLLM: `with_options(budget_key=...)` (as `budget_key=` and
`call_kwargs={"budget_key": ...}` at construction) charges every call the LLM makes to that key's account, on every
call path a query engine, an agent or structured output takes, streams included (they route at their first read)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent, ReActAgent
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel

from bandit_router import Budget, BudgetExceededError, ConfigError, Router
from bandit_router.encoders import as_encoder
from bandit_router.testing import FakeLLMServer
from llamaindex_bandit_router import BanditRouterLLM, EncoderEmbedding

from .conftest import CHEAP, NO_RETRIES, bag_of_words, cards

PROMPT = "tell me about rivers"
MESSAGES = [ChatMessage(role=MessageRole.USER, content=PROMPT)]


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


class Song(BaseModel):
    title: str
    year: int


TOOLS = [FunctionTool.from_defaults(multiply)]
SONG = PromptTemplate("Name a song from {year}.")


async def drained(result: Any) -> Any:
    """`result` awaited if it is awaitable, then read to its end if it is a stream."""
    if inspect.isawaitable(result):
        result = await result
    if inspect.isasyncgen(result):
        return [r async for r in result]
    if inspect.isgenerator(result):
        return list(result)
    return result


PATHS: dict[str, Callable[[BanditRouterLLM], Awaitable[Any]]] = {
    "chat": lambda llm: drained(llm.chat(MESSAGES)),
    "achat": lambda llm: drained(llm.achat(MESSAGES)),
    "complete": lambda llm: drained(llm.complete(PROMPT)),
    "acomplete": lambda llm: drained(llm.acomplete(PROMPT)),
    "stream_chat": lambda llm: drained(llm.stream_chat(MESSAGES)),
    "astream_chat": lambda llm: drained(llm.astream_chat(MESSAGES)),
    "stream_complete": lambda llm: drained(llm.stream_complete(PROMPT)),
    "astream_complete": lambda llm: drained(llm.astream_complete(PROMPT)),
    "chat_with_tools": lambda llm: drained(llm.chat_with_tools(TOOLS, user_msg="What is 6 times 7?")),
    "achat_with_tools": lambda llm: drained(llm.achat_with_tools(TOOLS, user_msg="What is 6 times 7?")),
    "stream_chat_with_tools": lambda llm: drained(llm.stream_chat_with_tools(TOOLS, user_msg="What is 6 times 7?")),
    "astream_chat_with_tools": lambda llm: drained(llm.astream_chat_with_tools(TOOLS, user_msg="6 times 7?")),
    "structured_predict": lambda llm: drained(llm.structured_predict(Song, SONG, year="1999")),
    "astructured_predict": lambda llm: drained(llm.astructured_predict(Song, SONG, year="1999")),
    "stream_structured_predict": lambda llm: drained(llm.stream_structured_predict(Song, SONG, year="1999")),
    "structured_llm_chat": lambda llm: drained(llm.as_structured_llm(Song).chat([ChatMessage(
        role="user", content="A song from 1999")])),
    "function_agent": lambda llm: drained(FunctionAgent(tools=[multiply], llm=llm).run("What is 6 times 6?")),
    "react_agent": lambda llm: drained(ReActAgent(tools=[multiply], llm=llm).run("What is 6 times 6?")),
}

WAYS: dict[str, Callable[[Router], BanditRouterLLM]] = {
    "with_options": lambda router: BanditRouterLLM(router, call_kwargs=NO_RETRIES).with_options(budget_key="u1"),
    "field": lambda router: BanditRouterLLM(router, budget_key="u1", call_kwargs=NO_RETRIES),
    "call_kwargs": lambda router: BanditRouterLLM(router, call_kwargs={**NO_RETRIES, "budget_key": "u1"}),
}


@pytest.fixture
def budget() -> Budget:
    return Budget(1.0, pacer="none", key_limit=0.5)


@pytest.fixture
def keyed(server: FakeLLMServer, budget: Budget, tmp_path: Path) -> Router:
    return Router(cards(server), encoder=bag_of_words, seed=0, budget=budget, log=tmp_path / "log.sqlite")


@pytest.mark.parametrize("way", sorted(WAYS))
@pytest.mark.parametrize("path", sorted(PATHS))
async def test_every_call_path_charges_the_llms_key(path: str, way: str, keyed: Router, budget: Budget) -> None:
    llm = WAYS[way](keyed)
    assert llm.budget_key == "u1" and "budget_key" not in llm.call_kwargs
    with llm.record_routes() as routes:
        await PATHS[path](llm)
    assert routes and budget.spent() > 0 and budget.reserved() == 0.0
    assert budget.spent("u1") == pytest.approx(budget.spent())  # every call of the path was charged to u1
    assert budget.spent("u1") == pytest.approx(sum(r["cost"] for r in routes))


async def test_a_stream_takes_its_key_when_asked_for_and_is_refused_at_its_first_read(
        server: FakeLLMServer, tmp_path: Path) -> None:
    budget = Budget(1.0, pacer="none", key_limit=1e-9)  # too little for any call under a key
    router = Router(cards(server), encoder=bag_of_words, seed=0, budget=budget, log=tmp_path / "log.sqlite")
    llm = BanditRouterLLM(router, call_kwargs=NO_RETRIES)
    stream = llm.with_options(budget_key="u1").stream_chat(MESSAGES)  # asked for: not routed yet
    astream = await llm.with_options(budget_key="u1").astream_complete(PROMPT)
    with pytest.raises(BudgetExceededError, match="key 'u1'"):
        next(stream)
    with pytest.raises(BudgetExceededError, match="key 'u1'"):
        await anext(astream)
    assert list(llm.stream_chat(MESSAGES))[-1].additional_kwargs["cost"] > 0  # the global account has room
    assert not server.requests[:-1]


def test_per_call_budget_key_overrides_the_llms(keyed: Router, budget: Budget) -> None:
    llm = BanditRouterLLM(keyed, budget_key="u1", call_kwargs=NO_RETRIES)
    llm.complete(PROMPT, budget_key="u2")
    assert budget.spent("u1") == 0.0 and budget.spent() > 0 and budget.spent("u2") == pytest.approx(budget.spent())
    llm.complete(PROMPT, budget_key=None)  # the global account alone
    assert budget.spent("u2") < budget.spent()


def _index() -> VectorStoreIndex:
    docs = [Document(text="The library opens at 10 am on Saturdays."), Document(text="Cats sleep a lot.")]
    return VectorStoreIndex.from_documents(docs, embed_model=EncoderEmbedding(as_encoder(bag_of_words)))


def test_a_query_engine_charges_its_users_account_and_their_limit_refuses_only_them(
        server: FakeLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each answer costs ~1.9e-4 (900 words out at 2e-7) of a worst case of ~2.2e-4 (1000 tokens out): a key
    limit of 3e-4 lets a user ask once."""
    server.set_behavior("cheap", respond=lambda messages: "word " * 900)
    budget = Budget(1.0, pacer="none", key_limit=3e-4)
    router = Router(cards(server), encoder=bag_of_words, seed=0, budget=budget, log=tmp_path / "log.sqlite")
    monkeypatch.setattr(Settings, "_llm", BanditRouterLLM(router, models=[CHEAP],
                                                         call_kwargs={**NO_RETRIES, "max_tokens": 1000}))
    index = _index()
    u1 = index.as_query_engine(llm=Settings.llm.with_options(budget_key="u1"))
    u2 = index.as_query_engine(llm=Settings.llm.with_options(budget_key="u2"))
    with Settings.llm.record_routes() as routes:  # the siblings' calls reach the parent's blocks
        u1.query("When does the library open?")
    [route] = routes
    assert route["cost"] > 1.5e-4 and budget.spent("u1") == pytest.approx(route["cost"])
    assert budget.spent() == pytest.approx(route["cost"])
    with pytest.raises(BudgetExceededError, match="key 'u1'"):
        u1.query("And on Sundays?")
    u2.query("When does the library open?")  # another user's limit is their own
    assert budget.spent("u2") == pytest.approx(route["cost"], rel=0.1)
    assert budget.spent() == pytest.approx(budget.spent("u1") + budget.spent("u2"))


def test_both_ways_agree_and_a_conflict_is_named(router: Router) -> None:
    parent = BanditRouterLLM(router, call_kwargs={"temperature": 0.0, "budget_key": "u1"})
    assert (parent.budget_key, parent.call_kwargs) == ("u1", {"temperature": 0.0})
    assert BanditRouterLLM(router, budget_key="u1", call_kwargs={"budget_key": "u1"}).budget_key == "u1"
    with pytest.raises(ConfigError, match=r"budget_key is given twice.*'u1'.*call_kwargs\['budget_key'\]='u2'"):
        BanditRouterLLM(router, budget_key="u1", call_kwargs={"budget_key": "u2"})
    with pytest.raises(ConfigError, match="budget_key is given twice"):
        parent.with_options(budget_key="u3", call_kwargs={"budget_key": "u4"})
    assert parent.with_options(call_kwargs={"budget_key": "u2"}).budget_key == "u2"  # the new call_kwargs' key
    assert parent.with_options(call_kwargs={}).budget_key == "u1"  # kept: it is not a LiteLLM argument
    assert parent.with_options(budget_key=None).budget_key is None
    assert parent.model_copy(update={"budget_key": "u5"}).budget_key == "u5" and parent.budget_key == "u1"
    parent.call_kwargs = {"budget_key": "u6"}
    assert (parent.budget_key, parent.call_kwargs) == ("u6", {})
    for bad in ("", 42):
        with pytest.raises(ConfigError, match="budget_key must be a non-empty string"):
            parent.with_options(budget_key=bad)
        with pytest.raises(ConfigError, match="budget_key must be a non-empty string"):
            parent.budget_key = bad

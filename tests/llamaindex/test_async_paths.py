"""The async paths of both wrappers call the router's async methods (never the blocking ones)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from llama_index.core.base.llms.types import ChatMessage

from bandit_router import Encoder, Router
from llamaindex_bandit_router import BanditRouterLLM

from ..fakes import hashed_bow
from .conftest import NO_RETRIES, cards


def block_sync(monkeypatch: pytest.MonkeyPatch, router: Router) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("an async path called a blocking Router method")

    monkeypatch.setattr(router, "complete", refuse)
    monkeypatch.setattr(router, "stream", refuse)


async def test_llamaindex_async_paths_use_async_router_methods(llm: BanditRouterLLM, router: Router,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    block_sync(monkeypatch, router)
    message = [ChatMessage(role="user", content="hi")]
    assert (await llm.achat(message)).message.content == "Echo: hi"
    assert (await llm.acomplete("hi")).text == "Echo: hi"
    assert [r async for r in await llm.astream_chat(message)][-1].message.content == "Echo: hi"
    assert [r async for r in await llm.astream_complete("hi")][-1].text == "Echo: hi"


async def test_langchain_async_paths_use_async_router_methods(router: Router,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from langchain_bandit_router import ChatBanditRouter

    block_sync(monkeypatch, router)
    llm = ChatBanditRouter(router=router)
    assert (await llm.ainvoke("hi")).content == "Echo: hi"
    assert "".join([c.text async for c in llm.astream("hi")]) == "Echo: hi"
    assert [m.content for m in await llm.abatch(["a", "b"])] == ["Echo: a", "Echo: b"]


def threaded_router(server, threads: list[str]) -> Router:
    """A router whose encoder records the thread each batch of prompts is encoded in."""
    def embed(texts: list[str]) -> np.ndarray:
        threads.append(threading.current_thread().name)
        return np.stack([hashed_bow(t) for t in texts])

    return Router(cards(server), encoder=Encoder(embed, name="threads", dim=16), seed=0)


async def test_streams_encode_the_prompt_off_the_event_loop(server) -> None:
    """Both wrappers' async streams encode in the encoder's worker thread, never on the loop's thread."""
    from langchain_bandit_router import ChatBanditRouter

    threads: list[str] = []
    router = threaded_router(server, threads)
    llm = BanditRouterLLM(router, call_kwargs=NO_RETRIES)
    assert [r async for r in await llm.astream_chat([ChatMessage(role="user", content="hi")])][-1].message.content \
        == "Echo: hi"
    assert "".join([c.text async for c in ChatBanditRouter(router=router).astream("hello")]) == "Echo: hello"
    assert len(threads) == 2 and all(name.startswith("encoder-threads") for name in threads), threads

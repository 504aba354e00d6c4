"""Fixtures of the LlamaIndex tests: a local OpenAI-compatible server with a cheap and a big model, a router over
it with a fast seeded encoder, and a BanditRouterLLM holding that router."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

from bandit_router import Model, Router
from bandit_router.testing import FakeLLMServer
from llamaindex_bandit_router import BanditRouterLLM

from ..fakes import hashed_bow

CHEAP, BIG = "openai/cheap", "openai/big"
NO_RETRIES = {"num_retries": 0, "max_retries": 0}  # LiteLLM must not retry: the router's fallback is under test


bag_of_words = hashed_bow


def cards(server: FakeLLMServer) -> list[Model]:
    """The server's two models with explicit prices (USD per token) and limits."""
    common = {"api_base": server.base_url, "api_key": "sk-test", "supports_tools": True}
    return [Model(CHEAP, input_cost_per_token=1e-7, output_cost_per_token=2e-7, context_window=8_192,
                  max_output_tokens=1_024, **common),
            Model(BIG, input_cost_per_token=1e-5, output_cost_per_token=3e-5, context_window=128_000,
                  max_output_tokens=4_096, **common)]


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(["cheap", "big"]) as srv:
        yield srv


@pytest.fixture
def router(server: FakeLLMServer, tmp_path: Path) -> Router:
    return Router(cards(server), encoder=bag_of_words, seed=0, log=tmp_path / "decisions.sqlite")


@pytest.fixture
def llm(router: Router) -> BanditRouterLLM:
    return BanditRouterLLM(router, call_kwargs=NO_RETRIES)

"""Fixtures of the LangChain tests: a fast deterministic encoder, a local OpenAI-compatible server serving two
models of different prices, and a ChatBanditRouter over them."""

from __future__ import annotations

import os
from typing import Iterator

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

from bandit_router import Model, Router
from bandit_router.testing import FakeLLMServer
from langchain_bandit_router import ChatBanditRouter

from .. import fakes

DIM = 32
SMALL, LARGE = "openai/small", "openai/large"


def hashed_bow(text: str) -> np.ndarray:
    """The shared hashed bag of words at this suite's width."""
    return fakes.hashed_bow(text, DIM)


def cards(base_url: str, tools: tuple[bool, bool] = (True, True)) -> list[Model]:
    """Two models on the local server: a cheap one and one ten times its price."""
    return [Model(SMALL, input_cost_per_token=1e-7, output_cost_per_token=4e-7, supports_tools=tools[0],
                  api_base=base_url, api_key="sk-test"),
            Model(LARGE, input_cost_per_token=1e-6, output_cost_per_token=4e-6, supports_tools=tools[1],
                  api_base=base_url, api_key="sk-test")]


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(["small", "large"]) as fake:
        yield fake


@pytest.fixture
def router(server: FakeLLMServer) -> Router:
    return Router(cards(server.base_url), encoder=hashed_bow, seed=0)


@pytest.fixture
def llm(router: Router) -> ChatBanditRouter:
    return ChatBanditRouter(router=router)

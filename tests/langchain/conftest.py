"""Fixtures of the LangChain tests: a fast deterministic encoder, a local OpenAI-compatible server serving two
models of different prices, and a ChatBanditRouter over them."""

from __future__ import annotations

import hashlib
import os
import re
from typing import Iterator

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

from bandit_router import Model, Router
from bandit_router.testing import FakeLLMServer
from langchain_bandit_router import ChatBanditRouter

DIM = 32
SMALL, LARGE = "openai/small", "openai/large"


def hashed_bow(text: str, dim: int = DIM) -> np.ndarray:
    """Hashed bag of words: each word adds +-1 to one of `dim - 1` buckets; a constant last bucket keeps it non-zero."""
    vector = np.zeros(dim)
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        vector[digest[0] % (dim - 1)] += 1.0 if digest[1] % 2 else -1.0
    vector[dim - 1] = 1.0
    return vector / np.linalg.norm(vector)


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

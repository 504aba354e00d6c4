"""Fixtures of the LlamaIndex tests: a local OpenAI-compatible server with a cheap and a big model, a router over
it with a fast seeded encoder, and a BanditRouterLLM holding that router."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Iterator

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

from bandit_router import Model, Router
from bandit_router.testing import FakeLLMServer
from llamaindex_bandit_router import BanditRouterLLM

CHEAP, BIG = "openai/cheap", "openai/big"
NO_RETRIES = {"num_retries": 0, "max_retries": 0}  # LiteLLM must not retry: the router's fallback is under test


def bag_of_words(text: str, dim: int = 16) -> np.ndarray:
    """Hashed bag of words with a constant bucket: a fast, deterministic stand-in for the sentence encoder."""
    vector = np.zeros(dim)
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=2).digest()
        vector[digest[0] % (dim - 1)] += 1.0 if digest[1] % 2 else -1.0
    vector[-1] = 1.0
    return vector / np.linalg.norm(vector)


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

"""Shared fixtures of the core tests: a fast deterministic encoder and model cards with explicit prices."""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any, Callable

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

from bandit_router import POLICIES, Model, Router

DIM = 16
NON_LEARNING = {"random", "fixed", "cheapest"}  # every other registered policy must learn from feedback


def hashed_bow(text: str, dim: int = DIM, seed: int = 0) -> np.ndarray:
    """Seeded hashed bag of words: each word adds +-1 to one of `dim` buckets; a constant bucket keeps it non-zero."""
    vector = np.zeros(dim)
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8, key=seed.to_bytes(4, "little")).digest()
        vector[digest[0] % (dim - 1)] += 1.0 if digest[1] % 2 else -1.0
    vector[dim - 1] = 1.0
    return vector / np.linalg.norm(vector)


def make_cards() -> list[Model]:
    """Three chat models with explicit prices (USD per token), so no cost-map lookup decides anything."""
    return [
        Model("openai/small", input_cost_per_token=1e-7, output_cost_per_token=4e-7, context_window=4_000,
              max_output_tokens=1_000, supports_tools=False),
        Model("openai/medium", input_cost_per_token=1e-6, output_cost_per_token=4e-6, context_window=32_000,
              max_output_tokens=4_000, supports_tools=True),
        Model("openai/large", input_cost_per_token=1e-5, output_cost_per_token=4e-5, context_window=128_000,
              max_output_tokens=8_000, supports_tools=True),
    ]


def settings_for(policy: str) -> dict[str, Any]:
    """Settings a policy needs to be built for the cards above."""
    return {"model": "openai/medium"} if policy == "fixed" else {}


@pytest.fixture
def encoder() -> Callable[[str], np.ndarray]:
    return hashed_bow


@pytest.fixture
def cards() -> list[Model]:
    return make_cards()


@pytest.fixture
def make_router(cards: list[Model]) -> Callable[..., Router]:
    """Router factory: make_router(policy="linucb", **router_kwargs) over the three cards and the hashed encoder."""

    def build(policy: str = "linucb", **kwargs: Any) -> Router:
        kwargs.setdefault("policy_settings", settings_for(policy))
        kwargs.setdefault("seed", 0)
        return Router(kwargs.pop("models", cards), policy=policy, encoder=hashed_bow, **kwargs)

    return build


ALL_POLICIES = sorted(POLICIES)

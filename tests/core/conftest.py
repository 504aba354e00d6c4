"""Shared fixtures of the core tests: a fast deterministic encoder and model cards with explicit prices."""

from __future__ import annotations

import os
from typing import Any, Callable

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

from bandit_router import Model, Router
from bandit_router.policies import policy_names

from ..fakes import hashed_bow  # noqa: F401  (the core tests' encoder, imported from here)

DIM = 16
NON_LEARNING = {"random", "fixed", "cheapest"}  # every other registered policy must learn from feedback


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


ALL_POLICIES = policy_names()

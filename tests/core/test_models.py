"""Model cards: prices from LiteLLM's bundled map, overrides, and an API key that never leaves the card."""

from __future__ import annotations

import logging

import litellm
import pytest

from bandit_router import ConfigError, Model, Router
from bandit_router.models import estimate_tokens

from .conftest import hashed_bow


def test_prices_and_limits_come_from_litellms_map():
    info = litellm.model_cost["gpt-4o-mini"]
    model = Model("openai/gpt-4o-mini")
    assert model.input_cost_per_token == info["input_cost_per_token"] == 1.5e-07
    assert model.output_cost_per_token == info["output_cost_per_token"] == 6e-07
    assert model.context_window == info["max_input_tokens"]
    assert model.max_output_tokens == info["max_output_tokens"]
    assert model.supports_tools is True
    assert model.cost(1_000, 500) == pytest.approx(1_000 * 1.5e-07 + 500 * 6e-07)


def test_overrides_are_respected():
    model = Model("openai/gpt-4o-mini", input_cost_per_token=1e-3, context_window=1_000, supports_tools=False,
                  description="cheap and quick")
    assert model.input_cost_per_token == 1e-3
    assert model.output_cost_per_token == 6e-07  # not overridden: from the map
    assert (model.context_window, model.supports_tools, model.description) == (1_000, False, "cheap and quick")
    assert Model("openai/gpt-4o-mini", input_cost_per_token=0.0).input_cost_per_token == 0.0  # free is allowed


def test_an_unknown_model_with_explicit_prices_is_fine():
    model = Model("openai/my-local-model", input_cost_per_token=0.0, output_cost_per_token=1e-9)
    assert model.context_window is None and model.supports_tools is None


def test_the_api_key_is_used_for_calls_but_never_shown_or_saved(tmp_path, caplog):
    key = "sk-very-secret-4242"
    model = Model("openai/gpt-4o-mini", api_key=key, api_base="http://127.0.0.1:9/v1")
    assert model.call_kwargs()["api_key"] == key and model.call_kwargs()["api_base"] == "http://127.0.0.1:9/v1"
    assert key not in repr(model) and key not in str(model)
    assert "api_key" not in model.to_config() and key not in str(model.to_config())
    router = Router([model, Model("openai/gpt-4o")], encoder=hashed_bow, seed=0)
    path = tmp_path / "router.safetensors"
    router.save(path)
    assert key.encode() not in path.read_bytes()
    endpoint = {"openai/gpt-4o-mini": "http://127.0.0.1:9/v1"}
    with pytest.raises(ConfigError, match="a state file cannot choose where requests and keys go"):
        Router.load(path, encoder=hashed_bow, api_keys={"openai/gpt-4o-mini": key})  # the file's endpoint, unconfirmed
    with caplog.at_level(logging.WARNING, logger="bandit_router.state"):
        assert Router.load(path, encoder=hashed_bow, api_bases=endpoint).models["openai/gpt-4o-mini"].api_key is None
    assert "['openai/gpt-4o-mini'] had an API key or credentials when saved" in caplog.text  # not gpt-4o: it had none
    caplog.clear()
    restored = Router.load(path, encoder=hashed_bow, api_keys={"openai/gpt-4o-mini": key}, api_bases=endpoint)
    assert restored.models["openai/gpt-4o-mini"].call_kwargs()["api_key"] == key and not caplog.text
    assert Model.from_config(model.to_config()) == model  # the key takes no part in equality


def test_estimate_tokens():
    assert [estimate_tokens(t) for t in ("", "abc", "abcd", "abcde", "x" * 400)] == [1, 1, 1, 2, 100]

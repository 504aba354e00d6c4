"""Invalid inputs, each raising its specific error with a message naming the problem."""

from __future__ import annotations

import pathlib
import pickle
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest
from safetensors.numpy import save_file

from bandit_router import FeedbackSettings, Model, Router
from bandit_router.errors import (ConfigError, DuplicateFeedbackError, StateFormatError, UnknownRouteError)
from bandit_router.policies import make_policy
from bandit_router.state import encode_state, read_state

from .conftest import hashed_bow, make_cards


@dataclass
class Ctx:
    router: Router
    tmp: pathlib.Path

    def rewarded(self) -> str:
        decision = self.router.route("What is 2+2?")
        self.router.feedback(decision.route_id, 1.0)
        return decision.route_id

    def feedback_after_expiry(self) -> None:
        router = Router(make_cards(), encoder=hashed_bow, seed=0, feedback=FeedbackSettings(pending_ttl=0.01))
        decision = router.route("What is 2+2?")
        time.sleep(0.05)
        router.feedback(decision.route_id, 0.5)

    def saved(self) -> pathlib.Path:
        path = self.tmp / "router.safetensors"
        self.router.save(path)
        return path

    def load(self, path: pathlib.Path) -> Router:
        return Router.load(path, encoder=hashed_bow)


@pytest.fixture
def ctx(make_router, tmp_path) -> Ctx:
    router = make_router("linucb")
    for prompt in ("What is 2+2?", "Write a poem."):
        router.feedback(router.route(prompt).route_id, 0.5)
    return Ctx(router, tmp_path)


def cards_with(**changes: Any) -> list[Model]:
    cards = make_cards()
    return [Model(**{**c.to_config(), **changes}) if i == 0 else c for i, c in enumerate(cards)]


def flip_last_byte(ctx: Ctx) -> pathlib.Path:
    path = ctx.saved()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # the last byte belongs to the array data
    path.write_bytes(bytes(data))
    return path


def write(ctx: Ctx, data: bytes, name: str = "state.bin") -> pathlib.Path:
    path = ctx.tmp / name
    path.write_bytes(data)
    return path


def safetensors_without_metadata(ctx: Ctx) -> pathlib.Path:
    path = ctx.tmp / "plain.safetensors"
    save_file({"policy.A": np.eye(3)}, str(path))
    return path


def safetensors_with_foreign_metadata(ctx: Ctx) -> pathlib.Path:
    path = ctx.tmp / "foreign.safetensors"
    save_file({"policy.A": np.eye(3)}, str(path), metadata={"format": "pt"})
    return path


def wrong_arrays(ctx: Ctx) -> pathlib.Path:
    """An intact file (valid checksum) whose arrays do not fit its policy."""
    config, _ = read_state(ctx.saved())
    return write(ctx, encode_state(config, {"policy.A": np.eye(2)}), name="wrong.safetensors")


CASES: list[tuple[str, Callable[[Ctx], Any], type[Exception], str]] = [
    # route_id
    ("unknown route_id", lambda c: c.router.feedback("no-such-route", 0.5), UnknownRouteError, "unknown route_id"),
    ("already rewarded", lambda c: c.router.feedback(c.rewarded(), 0.5), DuplicateFeedbackError, "already rewarded"),
    ("expired route_id", lambda c: c.feedback_after_expiry(), UnknownRouteError, "expired"),
    # score
    *[(f"score {v!r}", (lambda v: lambda c: c.router.feedback(c.router.route("hi").route_id, v))(v), ConfigError,
       r"score must be a (finite )?number in \[0, 1\]") for v in (float("nan"), -0.1, 1.5, "1", True, None,
                                                                   float("inf"))],
    ("observe score 2", lambda c: c.router.observe("hi", "openai/small", 2), ConfigError, "score"),
    # dial
    *[(f"dial {v!r}", (lambda v: lambda c: c.router.route("hi", cost_weight=v))(v), ConfigError,
       r"cost_weight must be a number in \[0, 1\]") for v in (-0.1, 1.1, float("nan"), "0.5", True)],
    ("router default dial 2", lambda c: Router(make_cards(), encoder=hashed_bow, cost_weight=2), ConfigError,
     "cost_weight"),
    ("complete dial -1", lambda c: c.router.complete("hi", cost_weight=-1, mock_response="x"), ConfigError,
     "cost_weight"),
    # model config
    ("unknown price", lambda c: Model("openai/made-up-model-7b"), ConfigError,
     "input_cost_per_token is unknown to LiteLLM's cost map"),
    ("negative price", lambda c: cards_with(input_cost_per_token=-1e-6), ConfigError,
     r"input_cost_per_token must be a finite number >= 0"),
    ("NaN price", lambda c: cards_with(output_cost_per_token=float("nan")), ConfigError, "output_cost_per_token"),
    ("price as text", lambda c: cards_with(input_cost_per_token="0.001"), ConfigError, "input_cost_per_token"),
    ("bad context window", lambda c: cards_with(context_window=0), ConfigError, "context_window"),
    ("context window as a bool", lambda c: cards_with(context_window=True), ConfigError, "context_window"),
    ("a self-hosted model with no provider", lambda c: Model("mymodel", input_cost_per_token=0,
     output_cost_per_token=0, api_base="http://127.0.0.1:8000/v1"), ConfigError,
     r"LiteLLM cannot tell which provider serves it .*'openai/mymodel'"),
    ("empty model name", lambda c: Model("", input_cost_per_token=0, output_cost_per_token=0), ConfigError,
     "Model.name"),
    ("api_key in params", lambda c: cards_with(params={"api_key": "sk-x"}), ConfigError, "api_key"),
    ("duplicate model names", lambda c: Router(make_cards() + make_cards()[:1], encoder=hashed_bow), ConfigError,
     "distinct names"),
    ("empty model list", lambda c: Router([], encoder=hashed_bow), ConfigError, "at least one model"),
    ("add a known model", lambda c: c.router.add_model(make_cards()[0]), ConfigError, "already in the router"),
    ("remove an unknown model", lambda c: c.router.remove_model("openai/nope"), ConfigError, "unknown model"),
    ("route to an unknown model", lambda c: c.router.route("hi", models=["openai/nope"]), ConfigError,
     "unknown names"),
    # policy
    ("unknown policy", lambda c: Router(make_cards(), policy="ucb9", encoder=hashed_bow), ConfigError,
     "unknown policy 'ucb9'"),
    ("alpha -1", lambda c: Router(make_cards(), policy_settings={"alpha": -1}, encoder=hashed_bow), ConfigError,
     "alpha must be a finite number >= 0"),
    ("alpha as text", lambda c: make_policy("linucb", 4, ["a"], alpha="0.5"), ConfigError, "alpha must be a float"),
    ("intercept as text", lambda c: make_policy("linucb", 4, ["a"], intercept="yes"), ConfigError,
     "intercept must be a bool"),
    ("draws as a float", lambda c: make_policy("thompson", 4, ["a"], draws=2.5), ConfigError, "draws must be an int"),
    ("epsilon 2", lambda c: make_policy("epsilon-greedy", 4, ["a"], epsilon=2), ConfigError,
     r"epsilon must be a number in \[0, 1\]"),
    ("regularization 0", lambda c: make_policy("thompson", 4, ["a"], regularization=0), ConfigError,
     "regularization must be a finite number > 0"),
    ("thompson draws 0", lambda c: make_policy("thompson", 4, ["a"], draws=0), ConfigError, "draws"),
    ("unknown setting", lambda c: make_policy("linucb", 4, ["a"], gamma=1), ConfigError,
     r"unknown settings \['gamma'\]"),
    ("fixed without model", lambda c: make_policy("fixed", 4, ["a"]), ConfigError, "needs model"),
    ("fixed on an unknown model", lambda c: Router(make_cards(), policy="fixed", policy_settings={"model": "openai/x"},
                                                   encoder=hashed_bow), ConfigError, "'openai/x' is not one of"),
    # router settings
    ("pending_ttl 0", lambda c: Router(make_cards(), encoder=hashed_bow,
                                          feedback=FeedbackSettings(pending_ttl=0)), ConfigError, "pending_ttl"),
    ("max_pending 0", lambda c: Router(make_cards(), encoder=hashed_bow,
                                          feedback=FeedbackSettings(max_pending=0)), ConfigError, "max_pending"),
    ("pending_ttl True", lambda c: FeedbackSettings(pending_ttl=True), ConfigError, "pending_ttl must be a finite"),
    ("pending_ttl inf", lambda c: FeedbackSettings(pending_ttl=float("inf")), ConfigError, "pending_ttl"),
    ("max_pending True", lambda c: FeedbackSettings(max_pending=True), ConfigError, "max_pending must be an integer"),
    ("token ttl inf", lambda c: FeedbackSettings(feedback_secret="s" * 16, feedback_token_ttl=float("inf")),
     ConfigError, "feedback_token_ttl must be a finite"),
    ("supports_tools 'yes'", lambda c: Model("openai/x", input_cost_per_token=0, output_cost_per_token=0,
                                             supports_tools="yes"), ConfigError, "supports_tools must be True"),
    ("description 5", lambda c: Model("openai/x", input_cost_per_token=0, output_cost_per_token=0, description=5),
     ConfigError, "description must be a str"),
    ("expired_reward 2", lambda c: Router(make_cards(), encoder=hashed_bow,
                                          feedback=FeedbackSettings(expired_reward=2)), ConfigError,
     "expired_reward must be"),
    # state file
    ("state file is a folder", lambda c: c.load(c.tmp), StateFormatError, "cannot read state file"),
    ("state file missing", lambda c: c.load(c.tmp / "missing.safetensors"), StateFormatError, "cannot read"),
    ("empty state file", lambda c: c.load(write(c, b"")), StateFormatError, "not a bandit-router state file"),
    ("random bytes", lambda c: c.load(write(c, np.random.default_rng(0).bytes(4096))), StateFormatError,
     "not a bandit-router state file"),
    ("truncated state file", lambda c: c.load(write(c, c.saved().read_bytes()[:-100])), StateFormatError,
     "not a bandit-router state file"),
    ("JSON file", lambda c: c.load(write(c, b'{"models": []}')), StateFormatError, "not a bandit-router state file"),
    ("safetensors without metadata", lambda c: c.load(safetensors_without_metadata(c)), StateFormatError,
     "format 'bandit-router/1' expected"),
    ("safetensors of another format", lambda c: c.load(safetensors_with_foreign_metadata(c)), StateFormatError,
     "format 'bandit-router/1' expected"),
    ("one flipped byte in the arrays", lambda c: c.load(flip_last_byte(c)), StateFormatError, "damaged"),
    ("arrays that do not fit the policy", lambda c: c.load(wrong_arrays(c)), StateFormatError, "state has arrays"),
    ("encoder of another dimension", lambda c: Router.load(c.saved(), encoder=lambda t: hashed_bow(t, dim=8)),
     StateFormatError, "gives 8-d vectors; the saved policy expects 16"),
]


@pytest.mark.parametrize("action, error, match", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_invalid_input_raises_its_error(ctx, action, error, match):
    with pytest.raises(error, match=match):
        action(ctx)


class _TouchOnLoad:
    """Unpickling this object creates `path`: proof that a pickle was executed."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def __reduce__(self):
        return pathlib.Path.touch, (self.path,)


def test_a_pickle_state_file_is_refused_and_never_executed(tmp_path):
    proof, marker = tmp_path / "proof", tmp_path / "marker"
    pickle.loads(pickle.dumps(_TouchOnLoad(proof)))  # the payload is live: unpickling it runs its code
    assert proof.exists()
    path = tmp_path / "router.safetensors"
    for protocol in (0, 2, pickle.HIGHEST_PROTOCOL):
        path.write_bytes(pickle.dumps({"models": [_TouchOnLoad(marker)]}, protocol=protocol))
        with pytest.raises(StateFormatError, match="not a bandit-router state file"):
            Router.load(path, encoder=hashed_bow)
        assert not marker.exists()


def test_state_file_with_a_flipped_header_byte_is_refused(ctx):
    path = ctx.saved()
    data = bytearray(path.read_bytes())
    header_len = int.from_bytes(data[:8], "little")
    for offset in range(8, 8 + header_len, max(1, header_len // 40)):
        damaged = data.copy()
        damaged[offset] ^= 0x04
        with pytest.raises(StateFormatError):
            ctx.load(write(ctx, bytes(damaged), name=f"h{offset}.safetensors"))


def test_every_single_flipped_bit_in_the_arrays_is_detected(ctx):
    path = ctx.saved()
    data = bytearray(path.read_bytes())
    header_len = int.from_bytes(data[:8], "little")
    rng = np.random.default_rng(0)
    for offset in rng.integers(8 + header_len, len(data), size=20):
        damaged = data.copy()
        damaged[offset] ^= 1 << int(rng.integers(8))
        with pytest.raises(StateFormatError, match="damaged"):
            ctx.load(write(ctx, bytes(damaged)))


def test_loading_without_the_custom_encoder_it_was_saved_with_says_what_to_pass(make_router, tmp_path):
    """A router saved with a custom encoder cannot rebuild it by name: a ConfigError says to pass it."""
    path = tmp_path / "router.safetensors"
    make_router().save(path)
    with pytest.raises(ConfigError, match="pass the same encoder"):
        Router.load(path)

"""Malformed and hostile inputs: each raises its typed error and leaves the router's state unchanged."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from bandit_router import FeedbackSettings, Limits, Router
from bandit_router.errors import (ConfigError, DuplicateFeedbackError, ExpiredFeedbackTokenError,
                                  FeedbackLimitError, InvalidFeedbackTokenError, InvalidPromptError,
                                  StateFormatError, UnknownRouteError)
from bandit_router.state import encode_state, read_state

from .workers import fake_encoder, model_cards

SECRET = "reliability-test-secret-0123456789"


def state_hash(router: Router) -> str:
    """Hash of the policy's arrays, the pending decisions and the random state."""
    h = hashlib.sha256()
    for name, array in sorted(router.policy.state().items()):
        h.update(name.encode() + np.ascontiguousarray(array).tobytes())
    h.update(json.dumps(sorted(router.ledger.waiting)).encode())
    h.update(json.dumps(router.rng.bit_generator.state, default=str).encode())
    return h.hexdigest()


@pytest.fixture
def router() -> Router:
    router = Router(model_cards(), encoder=fake_encoder, seed=0,
                    feedback=FeedbackSettings(feedback_secret=SECRET, source_limit=3),
                    limits=Limits(max_prompt_chars=1000))
    for i in range(5):
        d = router.route(f"warm-up {i}")
        router.feedback(d.route_id, 0.5, token=d.feedback_token, source=f"warm-up-{i}")
    return router


class Setup:
    """What a case acts on: the router, an open decision, a rewarded one, and a source at its cap."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.rewarded = router.route("already rewarded")
        router.feedback(self.rewarded.route_id, 1.0, token=self.rewarded.feedback_token, source="s")
        self.other = router.route("another request")
        self.open = router.route("waiting for feedback")
        for i in range(3):
            d = router.route(f"greedy {i}")
            router.feedback(d.route_id, 1.0, token=d.feedback_token, source="greedy-user")


def fb(score: Any = 0.5, token: str | None = "valid", route: str = "open", source: str | None = "user-1"):
    def act(s: Setup) -> None:
        decision = {"open": s.open, "rewarded": s.rewarded}.get(route)
        route_id = decision.route_id if decision else route
        t = decision.feedback_token if token == "valid" else token
        s.router.feedback(route_id, score, token=t, source=source)
    return act


def with_token(make: Callable[[Setup], str]):
    return lambda s: s.router.feedback(s.open.route_id, 0.5, token=make(s), source="user-1")


def tampered_expiry(s: Setup) -> str:
    expires, signature = s.open.feedback_token.split(".")
    return f"{int(expires) + 10**6}.{signature}"


FEEDBACK_CASES = [
    ("forged token", fb(token="4102444800.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), InvalidFeedbackTokenError,
     "not valid for route_id"),
    ("malformed token", fb(token="not a token"), InvalidFeedbackTokenError, "malformed"),
    ("missing token", fb(token=None), InvalidFeedbackTokenError, "needs the decision's feedback_token"),
    ("token of another route", with_token(lambda s: s.other.feedback_token), InvalidFeedbackTokenError,
     "issued for another route"),
    ("token with a moved expiry", with_token(tampered_expiry), InvalidFeedbackTokenError, "not valid"),
    ("expired token", with_token(lambda s: s.router.tokens.issue(s.open.route_id, now=0.0)),
     ExpiredFeedbackTokenError, "expired"),
    ("duplicate feedback", fb(route="rewarded"), DuplicateFeedbackError, "already rewarded"),
    ("unknown route", lambda s: s.router.feedback("f" * 32, 0.5, token=s.router.tokens.issue("f" * 32), source="u"),
     UnknownRouteError, "unknown route_id"),
    ("NaN reward", fb(score=float("nan")), ConfigError, "score must be a finite number in \\[0, 1\\]"),
    ("infinite reward", fb(score=float("inf")), ConfigError, "score must be a finite number"),
    ("huge reward", fb(score=1e308), ConfigError, "score must be a finite number in \\[0, 1\\]"),
    ("negative reward", fb(score=-0.5), ConfigError, "in \\[0, 1\\]"),
    ("reward above 1", fb(score=1.5), ConfigError, "in \\[0, 1\\]"),
    ("reward as text", fb(score="1"), ConfigError, "score must be a number"),
    ("reward as bool", fb(score=True), ConfigError, "score must be a number"),
    ("source over its cap", fb(source="greedy-user"), FeedbackLimitError, "source_limit allows 3"),
    ("feedback without a source", fb(source=None), ConfigError, "source must be a non-empty string"),
    ("oversized prompt", lambda s: s.router.route("x" * 1001), InvalidPromptError, "max_prompt_chars"),
    ("oversized chat messages", lambda s: s.router.route([{"role": "user", "content": "x" * 600}] * 2),
     InvalidPromptError, "max_prompt_chars"),
    ("invalid UTF-8 bytes", lambda s: s.router.route(b"\xff\xfe caf\xc3"), InvalidPromptError, "decode it as UTF-8"),
    ("bytes to complete", lambda s: s.router.complete(b"\xff\xfe caf\xc3"), InvalidPromptError, "decode it as UTF-8"),
    ("lone surrogate to stream", lambda s: s.router.stream("caf\udcc3"), InvalidPromptError, "not valid UTF-8"),
    ("lone surrogate (undecodable bytes)", lambda s: s.router.route("caf\udcc3"), InvalidPromptError,
     "not valid UTF-8"),
    ("lone surrogate in messages", lambda s: s.router.route([{"role": "user", "content": "\ud800"}]),
     InvalidPromptError, "not valid UTF-8"),
    ("oversized observed prompt", lambda s: s.router.observe("x" * 1001, "small", 1.0), InvalidPromptError,
     "max_prompt_chars"),
]


@pytest.mark.parametrize("act, error, match", [c[1:] for c in FEEDBACK_CASES], ids=[c[0] for c in FEEDBACK_CASES])
def test_hostile_call_raises_and_leaves_state_unchanged(router: Router, act, error, match) -> None:
    setup = Setup(router)
    before = state_hash(router)
    with pytest.raises(error, match=match):
        act(setup)
    assert state_hash(router) == before


def test_valid_feedback_is_accepted_and_changes_state(router: Router) -> None:
    setup = Setup(router)
    before = state_hash(router)
    router.feedback(setup.open.route_id, 0.5, token=setup.open.feedback_token, source="user-1")
    assert state_hash(router) != before


# -- state files -------------------------------------------------------------------------------------------------
class Payload:
    """Unpickling this would create the marker file: it must never happen."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def crafted(config_change: Callable[[dict], None] | None = None,
            array_change: Callable[[dict], None] | None = None) -> Callable[[bytes, Path], bytes]:
    """A file with a valid checksum (anyone can compute one) but crafted content."""
    def make(good: bytes, folder: Path) -> bytes:
        path = folder / "good.tmp"
        path.write_bytes(good)
        config, arrays = read_state(path)
        arrays = {k: np.array(v) for k, v in arrays.items()}
        if config_change:
            config_change(config)
        if array_change:
            array_change(arrays)
        return encode_state(config, arrays)
    return make


def flip(offset: Callable[[bytes], int]) -> Callable[[bytes, Path], bytes]:
    def make(good: bytes, folder: Path) -> bytes:
        data = bytearray(good)
        data[offset(good)] ^= 0x01
        return bytes(data)
    return make


def header_end(data: bytes) -> int:
    return 8 + int.from_bytes(data[:8], "little")


def set_nan(arrays: dict) -> None:
    arrays["policy.A"][0, 0, 0] = np.nan


def set_policy(config: dict) -> None:
    config["policy"]["name"] = "os.system"


def add_model_field(config: dict) -> None:
    config["models"][0]["__class__"] = "subprocess.Popen"


def foreign_safetensors(good: bytes, folder: Path) -> bytes:
    from safetensors.numpy import save

    return save({"weight": np.zeros(3)})


STATE_CASES = [
    ("empty file", lambda good, folder: b"", StateFormatError, "too short"),
    ("truncated file", lambda good, folder: good[: len(good) // 2], StateFormatError, "not a bandit-router state file"),
    ("truncated header", lambda good, folder: good[:40], StateFormatError, "bad header length"),
    ("crafted pickle", lambda good, folder: pickle.dumps(Payload(folder / "pwned")), StateFormatError,
     "not a bandit-router state file"),
    ("huge header length", lambda good, folder: (2**62).to_bytes(8, "little") + good[8:], StateFormatError,
     "bad header length"),
    ("flipped byte in the arrays", flip(lambda d: len(d) - 3), StateFormatError, "checksum"),
    ("flipped byte in the first array", flip(lambda d: header_end(d) + 5), StateFormatError, "checksum"),
    ("flipped byte in the header", flip(lambda d: 8 + d[8:header_end(d)].index(b'"dim')), StateFormatError,
     "not a bandit-router state file|checksum"),
    ("another library's safetensors", foreign_safetensors, StateFormatError, "format"),
    ("crafted NaN arrays", crafted(array_change=set_nan), StateFormatError, "NaN or infinite"),
    ("crafted array shapes", crafted(array_change=lambda a: a.update({"policy.b": np.zeros((3, 2))})),
     StateFormatError, "has shape"),
    ("crafted missing arrays", crafted(array_change=lambda a: a.pop("policy.A_inv")), StateFormatError, "expected"),
    ("crafted policy name", crafted(config_change=set_policy), ConfigError, "unknown policy 'os.system'"),
    ("crafted model field", crafted(config_change=add_model_field), ConfigError, "unknown fields"),
    ("crafted missing config", crafted(config_change=lambda c: c.pop("models")), StateFormatError,
     "has keys .* expected"),
]


@pytest.mark.parametrize("make, error, match", [c[1:] for c in STATE_CASES], ids=[c[0] for c in STATE_CASES])
def test_bad_state_file_is_refused(router: Router, tmp_path: Path, make, error, match) -> None:
    router.save(tmp_path / "good.safetensors")
    good = (tmp_path / "good.safetensors").read_bytes()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(make(good, tmp_path))
    before = state_hash(router)
    with pytest.raises(error, match=match):
        Router.load(bad, encoder=fake_encoder)
    assert not (tmp_path / "pwned").exists()  # the pickle was never executed
    assert state_hash(router) == before
    assert Router.load(tmp_path / "good.safetensors", encoder=fake_encoder)  # the intact file still loads


@pytest.mark.parametrize("settings, match", [
    (lambda: {"feedback": FeedbackSettings(feedback_secret="short")},
     "feedback_secret must be a str or bytes of at least 16 bytes"),
    (lambda: {"feedback": FeedbackSettings(feedback_secret=SECRET, feedback_token_ttl=0)},
     r"feedback_token_ttl must be a finite number > 0 \(seconds\)"),
    (lambda: {"feedback": FeedbackSettings(source_limit=0)}, "source_limit must be an integer >= 1"),
    (lambda: {"feedback": FeedbackSettings(source_limit=5, source_window=-1)},
     "source_window must be a number of seconds > 0"),
    (lambda: {"limits": Limits(max_prompt_chars=0)}, "max_prompt_chars must be an integer >= 1"),
])
def test_invalid_guard_settings(settings, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Router(model_cards(), encoder=fake_encoder, **settings())


def test_source_cap_is_a_sliding_window() -> None:
    from bandit_router.quota import SourceQuota

    quota = SourceQuota(limit=2, window=10.0)
    for now in (0.0, 1.0):
        quota.count(quota.check("user", now=now), now=now)
    with pytest.raises(FeedbackLimitError):
        quota.check("user", now=9.0)
    quota.check("other-user", now=9.0)  # other sources are not affected
    with pytest.raises(FeedbackLimitError):
        quota.check("user", now=10.5)  # estimated 2 x 0.95 still inside the sliding window
    assert quota.check("user", now=19.5) == "user"  # estimated 2 x 0.05: room for one more

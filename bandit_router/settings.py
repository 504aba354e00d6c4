"""The router's settings, grouped by the part of the router they steer; each group is frozen and validated."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .checks import check_integer, check_positive, check_score
from .errors import ConfigError
from .quota import SourceQuota
from .store import DecisionLog, SQLiteDecisionLog, StateStore
from .tokens import FeedbackTokens

__all__ = ["FeedbackSettings", "Limits", "LogSettings"]


def settings_or_default(value: Any, kind: type, field: str) -> Any:
    """`value` if it is a `kind`, a default `kind()` for None, else ConfigError naming `field`."""
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise ConfigError(f"{field} must be a bandit_router.{kind.__name__} or None, got {type(value).__name__}")
    return value


def _whole(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")


@dataclass(frozen=True)
class FeedbackSettings:
    """How decisions wait for feedback and who may give it.

    pending_ttl: seconds a decision waits for feedback. max_pending: most decisions waiting; beyond it the oldest
    expires. expired_reward: reward applied when a decision expires unrated (None: expiry teaches nothing).
    feedback_secret: sign each decision's `feedback_token` with this secret (>= 16 bytes); feedback must then
    bring the token (see `bandit_router.tokens`); never saved. feedback_token_ttl: seconds a token stays valid
    (default: pending_ttl). source_limit: most feedback counted per source in any `source_window` seconds;
    feedback must then name its `source` (see `bandit_router.quota`).
    """

    pending_ttl: float = 86_400.0
    max_pending: int = 100_000
    expired_reward: float | None = None
    feedback_secret: str | bytes | None = field(default=None, repr=False)
    feedback_token_ttl: float | None = None
    source_limit: int | None = None
    source_window: float = 3600.0

    def __post_init__(self) -> None:
        check_positive(self.pending_ttl, "pending_ttl", unit="seconds")
        check_integer(self.max_pending, "max_pending", 1, 10**9)
        if self.expired_reward is not None:
            object.__setattr__(self, "expired_reward", check_score(self.expired_reward, "expired_reward"))
        self.tokens()
        self.quota()

    def tokens(self) -> FeedbackTokens | None:
        """A token issuer for `feedback_secret` (None without one)."""
        if self.feedback_secret is None:
            return None
        ttl = self.pending_ttl if self.feedback_token_ttl is None else self.feedback_token_ttl
        return FeedbackTokens(self.feedback_secret, ttl)

    def quota(self, store: StateStore | None = None) -> SourceQuota | None:
        """A per-source quota for `source_limit` (None without one), its counters in `store` when given."""
        return None if self.source_limit is None else SourceQuota(self.source_limit, self.source_window, store=store)

    def to_config(self) -> dict[str, Any]:
        """What a saved router keeps: the waiting rules (never the secret, nor the per-deployment guards)."""
        return {"pending_ttl": self.pending_ttl, "max_pending": self.max_pending,
                "expired_reward": self.expired_reward}


@dataclass(frozen=True)
class Limits:
    """How far the router goes for one request, and how often it syncs.

    expected_output_tokens: output length used to predict a call's cost when max_tokens is not given.
    max_attempts: models tried per call when providers fail (timeouts, 5xx, rate limits, context length, a 401/403
    refusing a key, a 404).
    max_prompt_chars: longest prompt accepted, in characters; longer ones raise InvalidPromptError.
    sync_every: seconds between syncs with a state_store (checked on route, feedback and observe; `sync()` forces
    one).
    cooldown, cooldown_after: a model whose calls failed `cooldown_after` times in a row (timeouts, 5xx, rate
    limits, refused keys) is not routed to for `cooldown` seconds, unless no other model is eligible; then one
    call tries it again (0 seconds: never).
    """

    expected_output_tokens: int = 256
    max_attempts: int = 3
    max_prompt_chars: int = 4_000_000
    sync_every: float = 5.0
    cooldown: float = 30.0
    cooldown_after: int = 3

    def __post_init__(self) -> None:
        for name in ("expected_output_tokens", "max_attempts", "max_prompt_chars", "cooldown_after"):
            _whole(getattr(self, name), name)
        for name in ("sync_every", "cooldown"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and 0 <= value < math.inf):
                raise ConfigError(f"{name} must be a number of seconds >= 0, got {value!r}")

    def to_config(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LogSettings:
    """Where decisions are logged and what of the prompt is kept.

    target: a SQLite file path or a DecisionLog (None keeps no log). store_prompts: also store prompt text in the
    log, and let it reach LiteLLM's debug logs (off by default). store_vectors: also store prompt vectors in the
    log (needed for off-policy evaluation).
    """

    target: str | Path | DecisionLog | None = None
    store_prompts: bool = False
    store_vectors: bool = False

    def __post_init__(self) -> None:
        if self.target is not None and not isinstance(self.target, (str, Path, DecisionLog)):
            raise ConfigError(f"log must be a SQLite file path, a DecisionLog or None, "
                              f"got {type(self.target).__name__}")
        for name in ("store_prompts", "store_vectors"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")

    def open(self) -> DecisionLog | None:
        """The decision log: `target` itself, or a SQLite log opened at the path."""
        return SQLiteDecisionLog(self.target) if isinstance(self.target, (str, Path)) else self.target

    def to_config(self) -> dict[str, Any]:
        return {"store_prompts": self.store_prompts, "store_vectors": self.store_vectors}

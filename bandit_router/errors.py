"""The library's exceptions: one base class, one type per kind of problem."""

from __future__ import annotations


class BanditRouterError(Exception):
    """Base class of every error the library raises on purpose."""


class ConfigError(BanditRouterError, ValueError):
    """A setting, model card or argument is invalid; the message names the field and its allowed range."""


class UnknownRouteError(BanditRouterError, KeyError):
    """Feedback names a route_id the router never issued, or one that expired."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DuplicateFeedbackError(BanditRouterError):
    """Feedback for a route_id that was already rewarded."""


class StateFormatError(BanditRouterError, ValueError):
    """A state file is not in this library's format, or is damaged."""


class NoEligibleModelError(BanditRouterError):
    """No model satisfies the request's constraints (allowed subset, tools, context length, budget)."""


class BudgetExceededError(NoEligibleModelError):
    """No eligible model's worst-case cost fits in what the budget (or the request's key) has left."""


class AllModelsFailedError(BanditRouterError):
    """Every attempted model failed; `failures` maps each model to the error it raised."""

    def __init__(self, message: str, failures: dict[str, BaseException]) -> None:
        super().__init__(message)
        self.failures = failures


class DataFormatError(BanditRouterError, ValueError):
    """A routing-table folder is malformed: a missing file or column, a score outside [0, 1], a negative cost."""


class InvalidPromptError(BanditRouterError, ValueError):
    """A prompt is not text, is not valid UTF-8, or is longer than the router's max_prompt_chars."""


class InvalidFeedbackTokenError(BanditRouterError):
    """A feedback token is missing, malformed, forged, or was issued for another route_id."""


class ExpiredFeedbackTokenError(InvalidFeedbackTokenError):
    """A genuine feedback token whose validity period has ended."""


class FeedbackLimitError(BanditRouterError):
    """A feedback source has used up its share of feedback for the current window: `limit` per `window` seconds."""

    def __init__(self, message: str, limit: int, window: float) -> None:
        super().__init__(message)
        self.limit = limit
        self.window = window


class StoreUnavailableError(BanditRouterError, ConnectionError):
    """The shared state store (SQLite file or Redis server) could not be reached or stayed busy too long."""


class ScoringError(BanditRouterError):
    """Some (prompt, model) pairs of a scoring run were left unscored; `failures` maps each pair to its cause."""

    def __init__(self, message: str, failures: dict[tuple[str, str], str]) -> None:
        super().__init__(message)
        self.failures = failures

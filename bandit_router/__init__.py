"""bandit-router: pick the LLM that should answer each request, and learn from the outcome."""

from .decision import Completion, Decision
from .encoders import Encoder, sentence_encoder
from .errors import (AllModelsFailedError, BanditRouterError, ConfigError, DuplicateFeedbackError,
                     ExpiredFeedbackTokenError, FeedbackLimitError, InvalidFeedbackTokenError, InvalidPromptError,
                     NoEligibleModelError, StateFormatError, StoreUnavailableError, UnknownRouteError)
from .models import Model
from .policies import POLICIES, Policy, make_policy
from .router import Router
from .store import RedisStateStore, SQLiteStateStore, StateStore

__all__ = ["AllModelsFailedError", "BanditRouterError", "Completion", "ConfigError", "Decision",
           "DuplicateFeedbackError", "Encoder", "Model", "NoEligibleModelError", "POLICIES", "Policy", "Router",
           "StateFormatError", "UnknownRouteError", "make_policy", "sentence_encoder",
           "ExpiredFeedbackTokenError", "FeedbackLimitError", "InvalidFeedbackTokenError", "InvalidPromptError",
           "RedisStateStore", "SQLiteStateStore", "StateStore", "StoreUnavailableError"]

"""bandit-router: pick the LLM that should answer each request, and learn from the outcome."""

from .budget import Budget
from .decision import Completion, Decision
from .encoders import Encoder, sentence_encoder
from .errors import (AllModelsFailedError, BanditRouterError, BudgetExceededError, ConfigError,
                     DataFormatError, DuplicateFeedbackError, ExpiredFeedbackTokenError, FeedbackLimitError,
                     InvalidFeedbackTokenError, InvalidPromptError, NoEligibleModelError, StateFormatError,
                     StoreUnavailableError, UnknownRouteError)
from .models import Model
from .policies import POLICIES, Policy, make_policy
from .router import Router
from .store import RedisStateStore, SQLiteStateStore, StateStore

__all__ = ["AllModelsFailedError", "BanditRouterError", "Budget", "BudgetExceededError", "Completion",
           "ConfigError", "DataFormatError", "Decision", "DuplicateFeedbackError", "Encoder",
           "ExpiredFeedbackTokenError", "FeedbackLimitError", "InvalidFeedbackTokenError", "InvalidPromptError",
           "Model", "NoEligibleModelError", "POLICIES", "Policy", "RedisStateStore", "Router", "SQLiteStateStore",
           "StateFormatError", "StateStore", "StoreUnavailableError", "UnknownRouteError", "make_policy",
           "sentence_encoder"]

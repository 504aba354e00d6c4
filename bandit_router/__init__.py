"""bandit-router: pick the LLM that should answer each request, and learn from the outcome."""

from .budget import Budget
from .decision import Completion, Decision
from .encoders import Encoder, sentence_encoder
from .errors import (AllModelsFailedError, BanditRouterError, BudgetExceededError, ConfigError,
                     DataFormatError, DuplicateFeedbackError, ExpiredFeedbackTokenError, FeedbackLimitError,
                     InvalidFeedbackTokenError, InvalidPromptError, NoEligibleModelError, ScoringError,
                     StateFormatError, StoreUnavailableError, UnknownRouteError)
from .models import Model
from .policies import POLICIES, Policy, make_policy
from .router import Router
from .settings import FeedbackSettings, Limits, LogSettings
from .spend import SpendTarget
from .store import DecisionLog, RedisStateStore, SQLiteDecisionLog, SQLiteStateStore, StateStore
from .tasks import TaskHints

__all__ = ["AllModelsFailedError", "BanditRouterError", "Budget", "BudgetExceededError", "Completion",
           "ConfigError", "DataFormatError", "Decision", "DecisionLog", "DuplicateFeedbackError", "Encoder",
           "ExpiredFeedbackTokenError", "FeedbackLimitError", "FeedbackSettings", "InvalidFeedbackTokenError",
           "InvalidPromptError", "Limits", "LogSettings", "Model", "NoEligibleModelError", "POLICIES", "Policy",
           "RedisStateStore", "Router", "SQLiteDecisionLog", "SQLiteStateStore", "ScoringError", "SpendTarget",
           "StateFormatError", "StateStore", "StoreUnavailableError", "TaskHints", "UnknownRouteError", "make_policy",
           "sentence_encoder"]

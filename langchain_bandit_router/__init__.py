"""LangChain integration of bandit-router: a chat model that routes each call and learns from ratings."""

from .callbacks import FeedbackHandler
from .chat_models import ChatBanditRouter

__all__ = ["ChatBanditRouter", "FeedbackHandler"]

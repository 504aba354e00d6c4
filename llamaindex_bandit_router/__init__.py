"""LlamaIndex integration of bandit-router: a routed LLM with a cost dial, and an embedding over its encoder."""

from bandit_router.feedback import EvaluationError

from .embeddings import EncoderEmbedding
from .evaluation import EvaluatorFeedback, evaluation_score
from .llm import BanditRouterLLM, routing_info

__all__ = ["BanditRouterLLM", "EncoderEmbedding", "EvaluationError", "EvaluatorFeedback", "evaluation_score",
           "routing_info"]

"""EncoderEmbedding: a bandit_router Encoder (e.g. the router's own MiniLM) as a LlamaIndex embedding model."""

from __future__ import annotations

from typing import Any, List

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import PrivateAttr

from bandit_router import ConfigError, Encoder

__all__ = ["EncoderEmbedding"]


class EncoderEmbedding(BaseEmbedding):
    """Embeds with a bandit_router Encoder, so an index can share the router's loaded, cached sentence encoder:
    `EncoderEmbedding(router.encoder)`."""

    _encoder: Encoder = PrivateAttr()

    def __init__(self, encoder: Encoder, **kwargs: Any) -> None:
        if not isinstance(encoder, Encoder):
            raise ConfigError(f"encoder must be a bandit_router Encoder, got {type(encoder).__name__}")
        super().__init__(model_name=encoder.name, **kwargs)
        self._encoder = encoder

    @classmethod
    def class_name(cls) -> str:
        return "EncoderEmbedding"

    def _get_text_embeddings(self, texts: List[str]) -> List[Embedding]:
        return self._encoder.encode(texts).tolist()

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._encoder(text).tolist()

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._get_text_embedding(query)

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return self._get_text_embedding(query)

"""Prompt encoders by kind and by name: sentence-transformers models and the static MiniLM."""

from __future__ import annotations

import threading
from typing import Callable, Sequence

import numpy as np

from .encoder_base import DEFAULT_ENCODER, Encoder, load_sentence_transformer
from .errors import ConfigError
from .static_encoder import STATIC_ENCODER, static_encoder

__all__ = ["DEFAULT_ENCODER", "Encoder", "sentence_encoder", "encoder_by_name", "as_encoder"]


def sentence_encoder(model_name: str = DEFAULT_ENCODER, batch_size: int = 64, device: str = "cpu",
                     cache_size: int = 10_000) -> Encoder:
    """A sentence-transformers encoder (normalised vectors), loaded on first use."""
    model = None
    lock = threading.Lock()

    def embed(texts: list[str]) -> np.ndarray:
        nonlocal model
        with lock:
            if model is None:
                model = load_sentence_transformer(model_name, device)
        return model.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)

    return Encoder(embed, name=model_name, cache_size=cache_size)


def encoder_by_name(name: str) -> Encoder:
    """The encoder called `name`: the static MiniLM (`static-all-MiniLM-L6-v2`), else a sentence-transformers
    model; a saved router or a replica rebuilds its encoder from the name it recorded."""
    return static_encoder() if name == STATIC_ENCODER else sentence_encoder(name)


def as_encoder(encoder: Encoder | Callable[[str], Sequence[float]] | str | None) -> Encoder:
    """An Encoder from None (the default sentence encoder), an encoder's name (see `encoder_by_name`), an
    Encoder, or any callable text -> vector."""
    if encoder is None:
        return sentence_encoder()
    if isinstance(encoder, str):
        return encoder_by_name(encoder)
    if isinstance(encoder, Encoder):
        return encoder
    if callable(encoder):
        fn = encoder
        return Encoder(lambda texts: np.stack([np.asarray(fn(t), dtype=np.float32) for t in texts]),
                       name=getattr(fn, "__name__", "custom"))
    raise ConfigError(f"encoder must be an encoder's name, an Encoder, a callable text -> vector, or None; "
                      f"got {type(encoder).__name__}")

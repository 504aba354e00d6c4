"""Prompt encoders by kind and by name: sentence-transformers models, the static MiniLM and hashed words."""

from __future__ import annotations

import hashlib
import re
import threading
from typing import Callable, Sequence

import numpy as np

from .encoder_base import DEFAULT_ENCODER, Encoder, load_sentence_transformer
from .errors import ConfigError
from .static_encoder import STATIC_ENCODER, static_encoder

__all__ = ["DEFAULT_ENCODER", "Encoder", "sentence_encoder", "hashing_encoder", "encoder_by_name", "as_encoder"]

_ALIASES = {"all-MiniLM-L6-v2": DEFAULT_ENCODER}  # short names of sentence-transformers models


def sentence_encoder(model_name: str = DEFAULT_ENCODER, batch_size: int = 64, device: str = "cpu",
                     cache_size: int = 10_000) -> Encoder:
    """A sentence-transformers encoder (normalised vectors), loaded on first use. "all-MiniLM-L6-v2" names the
    default: the encoder is named (so cached, saved and laid out) by the full name."""
    model_name = _ALIASES.get(model_name, model_name)
    model = None
    lock = threading.Lock()

    def embed(texts: list[str]) -> np.ndarray:
        nonlocal model
        with lock:
            if model is None:
                model = load_sentence_transformer(model_name, device)
        return model.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)

    return Encoder(embed, name=model_name, cache_size=cache_size)


def hashing_encoder(dim: int) -> Encoder:
    """A hashed bag of words (normalised, `dim` long; named "hashing:<dim>"): no model to load, microseconds per
    prompt; for tests, load tests and deployments whose prompts are routed well enough by their words."""
    if isinstance(dim, bool) or not isinstance(dim, int) or not 2 <= dim <= 4096:
        raise ConfigError(f"encoder 'hashing:<dim>' needs dim in [2, 4096], got {dim!r}")

    def embed(texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
                out[row, int.from_bytes(digest[:3], "little") % (dim - 1)] += 1.0 if digest[3] % 2 else -1.0
            out[row, -1] = 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    return Encoder(embed, name=f"hashing:{dim}", dim=dim)


def encoder_by_name(name: str) -> Encoder:
    """The encoder called `name`: "hashing:<dim>", the static MiniLM (`static-all-MiniLM-L6-v2`), else a
    sentence-transformers model; a saved router or a replica rebuilds its encoder from the name it recorded."""
    if name.startswith("hashing:"):
        try:
            dim = int(name.removeprefix("hashing:"))
        except ValueError:
            raise ConfigError(f"encoder {name!r}: the dimension after 'hashing:' must be an integer") from None
        return hashing_encoder(dim)
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

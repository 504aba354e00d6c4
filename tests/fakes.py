"""Test doubles shared by the test packages."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import numpy as np
import pytest


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


def record_policy_vectors(router: Any, monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:
    """Copies of the vectors `router`'s policy is asked to choose for, oldest first."""
    vectors: list[np.ndarray] = []
    probabilities = router.policy.probabilities

    def spy(x: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        vectors.append(np.array(x, copy=True))
        return probabilities(x, *args, **kwargs)

    monkeypatch.setattr(router.policy, "probabilities", spy)
    return vectors


def record_litellm_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The keyword arguments of every litellm.completion / acompletion call, which still go through."""
    import litellm

    sent: list[dict[str, Any]] = []
    completion, acompletion = litellm.completion, litellm.acompletion

    def spy(**kwargs: Any) -> Any:
        sent.append(kwargs)
        return completion(**kwargs)

    async def aspy(**kwargs: Any) -> Any:
        sent.append(kwargs)
        return await acompletion(**kwargs)

    monkeypatch.setattr(litellm, "completion", spy)
    monkeypatch.setattr(litellm, "acompletion", aspy)
    return sent

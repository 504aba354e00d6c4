"""A router process for the multi-process tests: routes and rewards `n` prompts through a shared state store.

Run as `python workers.py sqlite|redis <path-or-url> <process> <n> <sync_every> [<decision log path>]`; prints
the number of feedback updates it applied per model as JSON, after a final sync.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter

import numpy as np

from bandit_router import Limits, Model, Router
from bandit_router.encoders import as_encoder
from bandit_router.store import RedisStateStore, SQLiteStateStore

DIM = 4
MODELS = ("small", "medium", "large")


def fake_encoder(text: str) -> np.ndarray:
    """A deterministic 4-d vector per text (the same in every process)."""
    digest = hashlib.sha256(text.encode()).digest()
    return np.frombuffer(digest[:DIM], dtype=np.uint8) / 255.0


def score_of(text: str) -> float:
    return hashlib.sha256(b"score" + text.encode()).digest()[0] / 255.0


def prompt_of(process: int, i: int) -> str:
    return f"process {process} prompt {i}"


def model_cards() -> list[Model]:
    return [Model(name, input_cost_per_token=1e-7 * 10**k, output_cost_per_token=2e-7 * 10**k, context_window=8192,
                  max_output_tokens=1024, supports_tools=False)
            for k, name in enumerate(MODELS)]


def expected_sums(processes: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """sum z z^T and sum r z over every prompt of every process (z = the router's vector with 1 appended)."""
    encoder = as_encoder(fake_encoder)
    Z = np.array([np.append(encoder(prompt_of(p, i)), 1.0) for p in range(processes) for i in range(n)])
    r = np.array([score_of(prompt_of(p, i)) for p in range(processes) for i in range(n)])
    return Z.T @ Z, Z.T @ r


def main(kind: str, target: str, process: int, n: int, sync_every: float, log: str | None = None) -> None:
    store = SQLiteStateStore(target) if kind == "sqlite" else RedisStateStore(target)
    router = Router(model_cards(), encoder=fake_encoder, seed=process, state_store=store,
                    limits=Limits(sync_every=sync_every), log=log)
    counts: Counter[str] = Counter()
    for i in range(n):
        prompt = prompt_of(process, i)
        decision = router.route(prompt)
        router.feedback(decision.route_id, score_of(prompt))
        counts[decision.model] += 1
    router.sync()
    print(json.dumps(counts))


if __name__ == "__main__":
    kind, target, process, n, sync_every, *log = sys.argv[1:]
    main(kind, target, int(process), int(n), float(sync_every), *log)

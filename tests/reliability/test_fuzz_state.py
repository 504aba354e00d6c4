"""Fuzzing Router.load with 1,200 mutated state files: truncated, bit-flipped, and re-checksummed with edited
configs and arrays. Every file loads to a router that routes and learns, or raises a BanditRouterError, within
1 s of CPU time and 500 MB of allocations (tracemalloc peak)."""

from __future__ import annotations

import copy
import json
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bandit_router import Router
from bandit_router.errors import BanditRouterError
from bandit_router.state import encode_state, read_state

from .workers import fake_encoder, model_cards

CASES = 1_200
MAX_SECONDS = 1.0
MAX_BYTES = 500 << 20
BASES = [("linucb", {}, ["chat", "code"]), ("thompson", {"draws": 64}, []), ("epsilon-greedy", {}, []),
         ("hierlin", {"clusters": 4, "pca_dims": 2, "refit_start": 5}, []), ("shared-linucb", {}, ["chat"]),
         ("cheapest", {}, [])]
VALUES: list[Any] = [None, True, False, 0, 1, -1, 2, 3, 0.5, -0.5, 1e300, -1e300, 1e-300, 2**63, 2**64, 10**30,
                     12_000, "", "x", "linucb", "../../etc/passwd", "sentence-transformers/all-MiniLM-L6-v2", [], {},
                     [1, 2], {"a": 1}, [[[[[[[[[[]]]]]]]]]], ["chat", "chat"], "\udcff"]
KEYS = ["log", "store_prompts", "feedback_secret", "source_limit", "max_prompt_chars", "pending_ttl", "name", "dim",
        "api_base", "params", "extra", "__class__"]
ARRAY_VALUES = [np.nan, np.inf, -np.inf, 1e300, -1e300, 1e13, 1e11, -1.0, 0.0, 2.0, 1e-300]


def base_file(folder: Path, policy: str, settings: dict, tasks: list[str]) -> bytes:
    router = Router(model_cards(), policy=policy, policy_settings=settings, encoder=fake_encoder, seed=0, tasks=tasks)
    for i in range(30):
        decision = router.route(f"prompt {i}", task=tasks[i % len(tasks)] if tasks else None)
        router.feedback(decision.route_id, (i % 5) / 4)
    path = folder / f"{policy}.safetensors"
    router.save(path)
    return path.read_bytes()


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a JSON tree (dict keys and list indices)."""
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += paths(value, prefix + (i,))
    return found


def edit_config(config: dict, rng: np.random.Generator) -> dict:
    config = copy.deepcopy(config)
    for _ in range(int(rng.integers(1, 4))):
        where = paths(config)[int(rng.integers(1, len(paths(config))))]
        parent = config
        for step in where[:-1]:
            parent = parent[step]
        op = rng.integers(4)
        if op == 0:
            parent[where[-1]] = copy.deepcopy(VALUES[int(rng.integers(len(VALUES)))])
        elif op == 1:
            del parent[where[-1]]
        elif op == 2 and isinstance(parent[where[-1]], dict):
            parent[where[-1]][KEYS[int(rng.integers(len(KEYS)))]] = VALUES[int(rng.integers(len(VALUES)))]
        elif op == 3 and isinstance(parent[where[-1]], (int, float)) and not isinstance(parent[where[-1]], bool):
            parent[where[-1]] = parent[where[-1]] * float(rng.choice([-1, 0.5, 2, 1e6, 1e-6]))
        elif isinstance(parent[where[-1]], list):
            parent[where[-1]] = parent[where[-1]] * 2  # duplicated models, tasks
    return config


def edit_arrays(arrays: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    arrays = {k: np.array(v) for k, v in arrays.items()}
    if not arrays:
        arrays["policy.A"] = np.zeros((3, 5, 5))
        return arrays
    name = sorted(arrays)[int(rng.integers(len(arrays)))]
    a = arrays[name]
    op = rng.integers(6)
    if op == 0 and a.size:
        flat = a.astype(np.float64).ravel()
        flat[int(rng.integers(a.size))] = ARRAY_VALUES[int(rng.integers(len(ARRAY_VALUES)))]
        arrays[name] = flat.reshape(a.shape)
    elif op == 1:
        arrays[name] = a.astype(rng.choice([np.float32, np.float16, np.int64, np.uint8, np.bool_]))
    elif op == 2:
        arrays[name] = a.reshape(-1) if a.ndim > 1 else a.reshape(1, -1)
    elif op == 3:
        del arrays[name]
    elif op == 4:
        arrays[name] = np.concatenate([a, a]) if a.ndim else a
    else:
        arrays[name] = a[: max(0, len(a) - 1)] if a.ndim else a
    return arrays


def mutate(good: bytes, folder: Path, rng: np.random.Generator) -> tuple[str, bytes]:
    kind = ["truncate", "flip", "config", "config", "arrays", "both"][int(rng.integers(6))]
    if kind == "truncate":
        return kind, good[: int(rng.integers(len(good)))]
    if kind == "flip":
        data = bytearray(good)
        for _ in range(int(rng.integers(1, 5))):
            data[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
        return kind, bytes(data)
    (folder / "base.tmp").write_bytes(good)
    config, arrays = read_state(folder / "base.tmp")
    if kind in ("config", "both"):
        config = edit_config(config, rng)
    if kind in ("arrays", "both"):
        arrays = edit_arrays(arrays, rng)
    try:
        return kind, encode_state(config, arrays)
    except (ValueError, TypeError):  # json.dumps refuses it (e.g. a lone surrogate): write it raw
        from safetensors.numpy import save

        from bandit_router.state import _digest
        text = json.dumps(config, ensure_ascii=False).encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        return kind, save(arrays, metadata={"format": "bandit-router/1", "config": text,
                                            "sha256": _digest(text, arrays)})


def load_and_use(path: Path) -> str:
    """"loaded" after Router.load, a route and a feedback succeed; the error's type name if it raised one."""
    try:
        router = Router.load(path, encoder=fake_encoder)
        decision = router.route("a fuzzed router must still route", task=router.tasks[0] if router.tasks else None)
        router.feedback(decision.route_id, 0.5)
        router.route("and route after learning")
    except BanditRouterError as error:
        return type(error).__name__
    return "loaded"


@pytest.mark.slow
def test_mutated_state_files_load_or_raise_typed_errors_quickly(tmp_path: Path) -> None:
    import litellm  # noqa: F401  (imported once up front: a card without limits reads LiteLLM's cost map)

    rng = np.random.default_rng(21)
    bases = [base_file(tmp_path, *base) for base in BASES]
    outcomes: Counter[tuple[str, str]] = Counter()
    slow: list[tuple[int, str, float, int]] = []
    untyped: list[tuple[int, str, str]] = []
    worst = (0.0, 0)
    for case in range(CASES):
        kind, data = mutate(bases[case % len(bases)], tmp_path, rng)
        path = tmp_path / "fuzzed.safetensors"
        path.write_bytes(data)
        tracemalloc.start()
        start = time.process_time()
        try:
            outcome = load_and_use(path)
        except Exception as error:  # noqa: BLE001  (collected: the assertion below lists them)
            outcome = "untyped"
            untyped.append((case, kind, repr(error)[:300]))
        seconds = time.process_time() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        outcomes[kind, outcome] += 1
        worst = (max(worst[0], seconds), max(worst[1], peak))
        if seconds > MAX_SECONDS or peak > MAX_BYTES:
            slow.append((case, kind, seconds, peak))
    print(sorted(outcomes.items()), f"worst: {worst[0]:.3f} s CPU, {worst[1] / 2**20:.1f} MB")
    assert untyped == []
    assert slow == []
    assert sum(outcomes.values()) == CASES >= 1_000
    assert sum(n for (kind, outcome), n in outcomes.items() if kind != "truncate" and outcome == "loaded") >= 50
    assert {outcome for _, outcome in outcomes} >= {"loaded", "StateFormatError", "ConfigError"}

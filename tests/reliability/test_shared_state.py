"""8 processes x 10,000 feedback updates through one shared store: every update applied exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bandit_router import ConfigError, Limits, Router, StateFormatError, StoreUnavailableError, TaskHints
from bandit_router.outcome import Outcome
from bandit_router.store import RedisStateStore, SQLiteDecisionLog, SQLiteStateStore, StateStore

from .workers import MODELS, expected_sums, fake_encoder, model_cards

WORKER = str(Path(__file__).with_name("workers.py"))
PROCESSES, UPDATES = 8, 10_000


def run_processes(kind: str, target: str, processes: int, n: int, sync_every: float,
                  log: str | None = None) -> Counter[str]:
    """Start `processes` workers at once; return the updates they applied per model, checking each succeeded."""
    commands = [[sys.executable, WORKER, kind, target, str(p), str(n), str(sync_every), *([log] if log else [])]
                for p in range(processes)]
    workers = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    applied: Counter[str] = Counter()
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        assert "database is locked" not in err
        assert worker.returncode == 0, err[-2000:]
        applied.update(json.loads(out))
    return applied


def check_totals(store: StateStore, applied: Counter[str], processes: int, n: int) -> None:
    totals = store.totals()
    assert {m: int(totals[m]["n"]) for m in totals} == dict(applied)
    assert sum(applied.values()) == processes * n
    A, b = expected_sums(processes, n)
    np.testing.assert_allclose(sum(totals[m]["A"] for m in MODELS), A, rtol=1e-10)
    np.testing.assert_allclose(sum(totals[m]["b"] for m in MODELS), b, rtol=1e-10)
    # the intercept feature counts each update once: A's corner entry is exactly the number of updates
    assert {m: totals[m]["A"][-1, -1] for m in MODELS} == {m: float(applied[m]) for m in MODELS}


def check_replica_serves_totals(store: StateStore) -> None:
    """A fresh replica serves exactly its prior precision + totals, with A_inv its inverse."""
    router = Router(model_cards(), encoder=fake_encoder, seed=0, state_store=store, limits=Limits(sync_every=3600))
    router.sync()
    totals = store.totals()
    for k, model in enumerate(router.policy.arms):
        np.testing.assert_allclose(router.policy.A[k], router.policy.prior_precision(k) + totals[model]["A"])
        np.testing.assert_allclose(router.policy.A_inv[k] @ router.policy.A[k], np.eye(router.policy.p), atol=1e-8)


def test_sqlite_8_processes_80000_updates(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    applied = run_processes("sqlite", path, PROCESSES, UPDATES, sync_every=0.05)
    store = SQLiteStateStore(path)
    check_totals(store, applied, PROCESSES, UPDATES)
    check_replica_serves_totals(store)


def test_redis_8_processes_80000_updates(redis_server) -> None:
    applied = run_processes("redis", redis_server.url, PROCESSES, UPDATES, sync_every=0.05)
    store = RedisStateStore(redis_server.url)
    check_totals(store, applied, PROCESSES, UPDATES)
    check_replica_serves_totals(store)


def test_decision_log_and_state_share_one_sqlite_file(tmp_path: Path) -> None:
    """Processes writing their decision log and merged state to the same file: every row and update lands."""
    path = str(tmp_path / "router.db")
    applied = run_processes("sqlite", path, 4, 500, sync_every=0.05, log=path)
    check_totals(SQLiteStateStore(path), applied, 4, 500)
    rows = list(SQLiteDecisionLog(path).rows())
    assert len(rows) == 4 * 500 and all(row["score"] is not None for row in rows)
    assert Counter(row["model"] for row in rows) == applied


@pytest.mark.parametrize("make_store", ["sqlite", "redis"])
def test_retried_push_is_counted_once(make_store: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    store = (SQLiteStateStore(tmp_path / "s.db") if make_store == "sqlite"
             else RedisStateStore(request.getfixturevalue("redis_server").url))
    delta = {"m": {"A": np.eye(2), "b": np.ones(2), "n": np.array(1)}}
    for _ in range(3):  # the reply of the first push was "lost": the replica sends the same batch again
        totals = store.merge("replica-1", 1, delta)
    totals = store.merge("replica-1", 2, delta)
    totals = store.merge("replica-2", 1, delta)
    assert int(totals["m"]["n"]) == 3
    np.testing.assert_array_equal(store.totals()["m"]["A"], 3 * np.eye(2))


def rate_and_sync(routers: list[Router], store: StateStore, n: int) -> dict[str, dict[str, np.ndarray]]:
    """`n` route + feedback calls spread over `routers`, then every router synced; the store's totals, checked to
    hold those `n` ratings and nothing else."""
    for i, router in enumerate(routers * (n // len(routers))):
        decision = router.route(f"request {i}")
        router.feedback(decision.route_id, 0.5)
    for router in routers + routers[:1]:
        router.sync()
    totals = store.totals()
    assert sum(int(totals[m]["n"]) for m in totals) == n
    return totals


def test_prior_stays_local_and_is_not_counted_twice(tmp_path: Path) -> None:
    """Replicas starting from the same prior serve prior + merged totals; the store holds only what they learned."""
    from bandit_router.policies import make_policy

    store = SQLiteStateStore(tmp_path / "state.db")
    X = np.array([fake_encoder(f"prior {i}") for i in range(20)])
    routers = []
    for seed in (0, 1):
        policy = make_policy("linucb", 4, list(MODELS), seed=seed)
        policy.learn([Outcome(x, model, 0.9) for x in X for model in MODELS])
        routers.append(Router(model_cards(), policy=policy, encoder=fake_encoder, state_store=store,
                              limits=Limits(sync_every=3600)))
    prior_A = routers[0].policy.A.copy()
    totals = rate_and_sync(routers, store, 100)  # the 2 x 60 prior observations were never pushed
    for router in routers:
        for k, model in enumerate(router.policy.arms):
            np.testing.assert_allclose(router.policy.A[k], prior_A[k] + totals[model]["A"])


@pytest.mark.parametrize("policy", ["shrunk-linucb", "linucb"])
def test_a_prior_given_to_routers_that_share_state_is_kept_once_by_each(policy: str, tmp_path: Path) -> None:
    """`table_prior` on routers already sharing a store (the documented order): each keeps the prior as its own
    base under the merged totals; the store holds only the feedback."""
    from bandit_router.priors import table_prior

    store = SQLiteStateStore(tmp_path / "state.db")
    routers = [Router(model_cards(), policy=policy, encoder=fake_encoder, seed=s, state_store=store,
                      limits=Limits(sync_every=3600)) for s in (0, 1)]
    prompts = [f"prior {i}" for i in range(20)]
    for router in routers:
        table_prior(router, prompts, np.full((20, len(MODELS)), 0.9), list(MODELS))
    prior_b = routers[0].policy.b.copy()
    totals = rate_and_sync(routers, store, 60)  # not the 2 x 20 x models prior rows
    for router in routers:  # prior + every replica's feedback, the prior counted once
        for k, model in enumerate(router.policy.arms):
            np.testing.assert_allclose(router.policy.b[k], prior_b[k] + totals[model]["b"])


def test_a_model_onboarded_on_every_replica_counts_its_quiz_once_in_each(tmp_path: Path) -> None:
    """`onboard` on each replica sharing a store: the quiz answers are each replica's own, never pushed."""
    from bandit_router.priors import onboard

    store = SQLiteStateStore(tmp_path / "state.db")
    routers = [Router(model_cards(), encoder=fake_encoder, seed=s, state_store=store,
                      limits=Limits(sync_every=3600)) for s in (0, 1)]
    k = routers[0].policy.index(MODELS[0])
    quiz_b = []
    for router in routers:
        before = router.policy.b[k].copy()
        onboard(router, MODELS[0], [f"quiz {i}" for i in range(10)], lambda prompt, model: 0.8)
        quiz_b.append(router.policy.b[k] - before)
    np.testing.assert_allclose(quiz_b[0][-1], 8.0)  # ten answers of 0.8 on the intercept
    totals = rate_and_sync(routers, store, 60)  # not 60 + 2 x 10 quiz answers
    for router, quiz in zip(routers, quiz_b):
        np.testing.assert_allclose(router.policy.b[k], quiz + totals[MODELS[0]]["b"])


@pytest.mark.parametrize("policy", ["shrunk-linucb", "linucb"])
def test_a_sharing_router_saved_and_loaded_beside_its_store_counts_each_rating_once(policy: str,
                                                                                      tmp_path: Path) -> None:
    """Back up with save, restore with load and the same store: the file's own part (a prior, the updates not
    yet synced) is loaded, and the store's totals once; with an empty store, the whole file."""
    from bandit_router.priors import table_prior

    store = SQLiteStateStore(tmp_path / "state.db")
    router = Router(model_cards(), policy=policy, encoder=fake_encoder, seed=0, state_store=store,
                    limits=Limits(sync_every=3600))
    table_prior(router, [f"prior {i}" for i in range(10)], np.full((10, len(MODELS)), 0.9), list(MODELS))
    rate_and_sync([router], store, 40)
    decision = router.route("not synced yet")
    router.feedback(decision.route_id, 1.0)
    router.save(tmp_path / "backup.safetensors")
    restored = Router.load(tmp_path / "backup.safetensors", encoder=fake_encoder, state_store=store, limits=Limits(sync_every=3600))
    np.testing.assert_allclose(restored.policy.A, router.policy.A)
    np.testing.assert_allclose(restored.policy.b, router.policy.b)
    restored.sync()
    router.sync()
    np.testing.assert_allclose(restored.policy.b, router.policy.b)  # both: own part + 41 ratings in the store
    alone = Router.load(tmp_path / "backup.safetensors", encoder=fake_encoder)
    np.testing.assert_allclose(alone.policy.b, restored.policy.b)
    moved = Router.load(tmp_path / "backup.safetensors", encoder=fake_encoder, state_store=SQLiteStateStore(tmp_path / "new.db"))
    np.testing.assert_allclose(moved.policy.b, restored.policy.b)


def test_a_backup_taken_before_a_sync_counts_its_ratings_once(tmp_path: Path) -> None:
    """save syncs first: a file saved before the replica's scheduled sync, loaded beside the store after it, counts
    each rating once (it counted the unsynced ones twice); remove_model syncs first too, so the ratings of the
    model reach the replicas that keep it (they were dropped)."""
    store = SQLiteStateStore(tmp_path / "state.db")
    router = Router(model_cards(), encoder=fake_encoder, seed=0, state_store=store, limits=Limits(sync_every=3600))
    for i in range(10):
        router.feedback(router.route(f"request {i}").route_id, 1.0)
    router.save(tmp_path / "backup.safetensors")
    router.sync()  # the scheduled sync, after the backup
    restored = Router.load(tmp_path / "backup.safetensors", encoder=fake_encoder, state_store=store,
                           limits=Limits(sync_every=3600))
    restored.sync()
    np.testing.assert_allclose(restored.policy.A, router.policy.A)
    assert sum(int(t["n"]) for t in store.totals().values()) == 10
    removed = next(iter(MODELS))
    before = int(store.totals()[removed]["n"])
    for i in range(5):
        router.feedback(router.route(f"more {i}", models=[removed]).route_id, 1.0)
    router.remove_model(removed)
    assert int(store.totals()[removed]["n"]) == before + 5


@pytest.mark.parametrize("policy", ["shrunk-linucb", "thompson", "epsilon-greedy"])
def test_every_linear_policy_shares_its_state(policy: str, tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "state.db")
    routers = [Router(model_cards(), policy=policy, encoder=fake_encoder, seed=s, state_store=store,
                      limits=Limits(sync_every=3600))
               for s in (0, 1)]
    for i, router in enumerate(routers * 30):
        decision = router.route(f"request {i}")
        router.feedback(decision.route_id, 0.25)
    for router in routers + routers[:1]:
        router.sync()
    assert sum(int(t["n"]) for t in store.totals().values()) == 60
    np.testing.assert_allclose(routers[0].policy.A, routers[1].policy.A)


def test_replicas_with_another_intercept_setting_are_refused_at_creation(tmp_path: Path) -> None:
    """The layout says a policy has no intercept, so such a replica is refused at once (it was created with a
    warning, served from its own state and never merged)."""
    store = SQLiteStateStore(tmp_path / "state.db")
    rate_and_sync([Router(model_cards(), policy="linucb", encoder=fake_encoder, state_store=store)], store, 4)
    with pytest.raises(StateFormatError, match='"intercept": false'):
        Router(model_cards(), policy="linucb", encoder=fake_encoder, state_store=store,
               policy_settings={"intercept": False}, limits=Limits(sync_every=3600))


def test_state_store_needs_a_linear_policy(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="state_store needs a linear policy"):
        Router(model_cards(), policy="random", encoder=fake_encoder, state_store=SQLiteStateStore(tmp_path / "s.db"))
    with pytest.raises(ConfigError, match="sync needs a router created with a state_store"):
        Router(model_cards(), encoder=fake_encoder).sync()
    with pytest.raises(ConfigError, match="sync_every must be"):
        Router(model_cards(), encoder=fake_encoder, state_store=SQLiteStateStore(tmp_path / "s.db"),
               limits=Limits(sync_every=-1))


def test_a_locked_sqlite_file_waits_then_raises_a_typed_error(tmp_path: Path) -> None:
    import sqlite3
    import threading

    path = tmp_path / "state.db"
    store = SQLiteStateStore(path, busy_timeout=0.3)
    delta = {"m": {"A": np.eye(2), "b": np.ones(2), "n": np.array(1)}}
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock ...
    threading.Timer(0.1, lambda: other.execute("COMMIT")).start()  # ... briefly
    assert int(store.merge("r", 1, delta)["m"]["n"]) == 1
    other.execute("BEGIN IMMEDIATE")  # ... and now for longer than busy_timeout
    with pytest.raises(StoreUnavailableError, match="stayed busy for 0.3 s") as caught:
        store.merge("r", 2, delta)
    assert "database is locked" not in str(caught.value)
    other.execute("COMMIT")
    assert int(store.merge("r", 2, delta)["m"]["n"]) == 2


@pytest.mark.parametrize("make_store", ["sqlite", "redis"])
def test_replicas_must_build_vectors_the_same_way(make_store: str, tmp_path: Path,
                                                  request: pytest.FixtureRequest) -> None:
    """Statistics of vectors laid out differently (tasks in another order, another text weight) never merge."""
    def store(namespace: str = "default") -> StateStore:
        if make_store == "sqlite":
            return SQLiteStateStore(tmp_path / "s.db", namespace=namespace)
        return RedisStateStore(request.getfixturevalue("redis_server").url, namespace=namespace)

    def router(tasks: tuple[str, ...], namespace: str = "default", **settings) -> Router:
        return Router(model_cards(), encoder=fake_encoder, seed=0, tasks=tasks, state_store=store(namespace),
                      limits=Limits(sync_every=3600), **settings)

    first = router(("chat", "code"))
    decision = first.route("hello", task="code")
    first.feedback(decision.route_id, 1.0)
    first.sync()
    for other in ({"tasks": ("code", "chat")}, {"tasks": TaskHints(("chat", "code"), text_weight=1.0)}, {"tasks": ()}):
        with pytest.raises(StateFormatError, match=r'holds state learned from vectors laid out as .*"chat", "code"'):
            router(**other)
    same = router(("chat", "code"))  # the same layout shares ...
    same.sync()
    assert sum(int(t["n"]) for t in store().totals().values()) == 1
    np.testing.assert_allclose(same.policy.A, first.policy.A)
    router(("code", "chat"), namespace="other").sync()  # ... and another namespace holds its own layout


def test_layout_is_checked_when_an_unreachable_store_comes_back(redis_server) -> None:
    """A replica started while Redis was down checks the layout at its first sync and pushes nothing on mismatch."""
    Router(model_cards(), encoder=fake_encoder, tasks=("chat", "code"), state_store=RedisStateStore(redis_server.url))
    redis_server.stop()
    late = Router(model_cards(), encoder=fake_encoder, seed=0, tasks=("code", "chat"),
                  state_store=RedisStateStore(redis_server.url, timeout=0.2), limits=Limits(sync_every=3600))
    decision = late.route("hello", task="code")
    late.feedback(decision.route_id, 1.0)
    redis_server.start()
    with pytest.raises(StateFormatError, match="cannot be added"):
        late.sync()
    assert RedisStateStore(redis_server.url).totals() == {}

"""Crashes and outages: a save killed at any point leaves the old or the new state; a Redis outage loses nothing."""

from __future__ import annotations

import hashlib
import os
import select
import signal
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from bandit_router import Limits, Router
from bandit_router.errors import StoreUnavailableError
from bandit_router.store import RedisStateStore, SQLiteStateStore, StateStore
from bandit_router.store.base import Stats

from .workers import MODELS, expected_sums, fake_encoder, model_cards, prompt_of, score_of


def policy_hash(router: Router) -> str:
    h = hashlib.sha256()
    for name, array in sorted(router.policy.state().items()):
        h.update(name.encode() + np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def trained(updates: int) -> Router:
    router = Router(model_cards(), encoder=fake_encoder, seed=0)
    for i in range(updates):
        decision = router.route(prompt_of(0, i))
        router.feedback(decision.route_id, score_of(prompt_of(0, i)))
    return router


def hold_at(point: str, signal_fd: int) -> None:
    """In a forked child: make the next save stop at `point` (after the temporary file is created, after it is
    written, or after it replaced the old file), tell the parent, and wait there to be killed."""
    def hold() -> None:
        os.write(signal_fd, b"1")
        time.sleep(60)

    mkstemp, replace = tempfile.mkstemp, os.replace

    def created(*args, **kwargs):
        handle = mkstemp(*args, **kwargs)
        hold()
        return handle

    def written(*args, **kwargs) -> None:
        hold()
        replace(*args, **kwargs)

    def renamed(*args, **kwargs) -> None:
        replace(*args, **kwargs)
        hold()

    if point == "created":
        tempfile.mkstemp = created
    else:
        os.replace = written if point == "written" else renamed


def test_sigkill_during_save_200_times_leaves_old_or_new(tmp_path: Path) -> None:
    """Half the kills land at random times; the other half at fixed points inside a save, by construction."""
    old, new = trained(10), trained(20)
    states = {policy_hash(old): "old", policy_hash(new): "new"}
    assert len(states) == 2
    path = tmp_path / "router.safetensors"
    started = time.perf_counter()
    for _ in range(5):
        old.save(path)
    save_time = (time.perf_counter() - started) / 5
    rng = np.random.default_rng(0)
    points = ["random", "created", "random", "written", "random", "renamed"] * 34
    for point in points[:200]:
        before = states[policy_hash(Router.load(path, encoder=fake_encoder))]
        ready, started_saving = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child saves new and old states in turn until it is killed
            try:
                if point == "random":
                    os.write(started_saving, b"1")  # the parent's clock starts once the child is up and saving
                else:
                    hold_at(point, started_saving)  # the first save (of new) signals from inside and waits
                while True:
                    new.save(path)
                    old.save(path)
            finally:
                os._exit(0)
        signalled = select.select([ready], [], [], 30)[0]
        os.close(ready), os.close(started_saving)
        if not signalled:  # the save no longer passes the point it should stop at
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"the child did not reach the {point!r} point of a save within 30 s")
        if point == "random":
            time.sleep(rng.uniform(0, 3 * save_time))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        after = states[policy_hash(Router.load(path, encoder=fake_encoder))]  # loads, and is old or new
        assert after == {"created": before, "written": before, "renamed": "new"}.get(point, after), point
    interrupted = list(tmp_path.glob(".router.safetensors.*.tmp"))  # temporary files of saves killed midway
    assert len(interrupted) >= points[:200].count("created") + points[:200].count("written")


class LosesReplies(StateStore):
    """A store whose every other merge is applied but whose reply never reaches the replica."""

    def __init__(self, inner: StateStore) -> None:
        self.inner = inner
        self.calls = 0

    def merge(self, replica: str, seq: int, delta: Stats) -> Stats:
        totals = self.inner.merge(replica, seq, delta)
        self.calls += 1
        if self.calls % 2:
            raise StoreUnavailableError("connection reset after the merge was applied")
        return totals

    def totals(self) -> Stats:
        return self.inner.totals()

    def claim_layout(self, layout: str) -> str:
        return self.inner.claim_layout(layout)


def feed(routers: list[Router], start: int, stop: int) -> None:
    for i in range(start, stop):
        router = routers[i % len(routers)]
        decision = router.route(prompt_of(0, i))  # routing goes on whatever the store's state
        router.feedback(decision.route_id, score_of(prompt_of(0, i)))


def check_merged(totals: Stats, updates: int) -> None:
    assert sum(int(totals[m]["n"]) for m in totals) == updates
    A, b = expected_sums(1, updates)
    np.testing.assert_allclose(sum(totals[m]["A"] for m in MODELS if m in totals), A, rtol=1e-10)
    np.testing.assert_allclose(sum(totals[m]["b"] for m in MODELS if m in totals), b, rtol=1e-10)


def test_lost_replies_do_not_double_count(tmp_path: Path) -> None:
    store = LosesReplies(SQLiteStateStore(tmp_path / "state.db"))
    routers = [Router(model_cards(), encoder=fake_encoder, seed=s, state_store=store, limits=Limits(sync_every=0))
               for s in (0, 1)]
    feed(routers, 0, 300)
    for router in routers:
        for _ in range(4):  # retried until a reply arrives
            try:
                router.sync()
                break
            except StoreUnavailableError:
                pass
    check_merged(store.totals(), 300)


def test_redis_stopped_and_restarted_mid_run(redis_server) -> None:
    routers = [Router(model_cards(), encoder=fake_encoder, seed=s, limits=Limits(sync_every=0),
                      state_store=RedisStateStore(redis_server.url, timeout=0.5)) for s in (0, 1)]
    feed(routers, 0, 200)
    check_merged(RedisStateStore(redis_server.url).totals(), 200)

    redis_server.stop()
    feed(routers, 200, 400)  # every route and feedback call succeeds: the replicas serve from local state
    assert sum(r.replica.unsynced for r in routers) == 200
    with pytest.raises(StoreUnavailableError, match="unavailable"):
        routers[0].sync()

    redis_server.start()
    feed(routers, 400, 600)
    for router in routers:
        router.sync()
    routers[0].sync()
    check_merged(RedisStateStore(redis_server.url).totals(), 600)
    np.testing.assert_allclose(routers[0].policy.A, routers[1].policy.A)
    assert all(r.replica.unsynced == 0 for r in routers)

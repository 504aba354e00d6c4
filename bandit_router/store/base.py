"""Learned state shared by many router replicas, and the replica side of keeping it in sync.

The linear policies learn additive sufficient statistics per model (A = sum z z^T, b = sum r z, n = count), so
replicas merge exactly by adding what each one learned. A `StateStore` holds the merged totals; a `Replica`
serves from its local copy, collects its own updates as deltas, and on a schedule pushes them (exactly once,
even when a push is retried after a lost reply) and pulls the merged totals back.

Statistics only add up when every replica builds its vectors the same way, so a store also keeps the layout of
the first replica that reached it (encoder, dimension, tasks in order, text weight) and refuses to merge from a
replica whose layout differs.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from abc import ABC, abstractmethod
from typing import Mapping

import numpy as np

from ..errors import BanditRouterError, StateFormatError, StoreUnavailableError
from ..policies.base import Policy

__all__ = ["Stats", "StateStore", "Replica", "add_stats", "encode_stats", "decode_stats"]

Stats = dict[str, dict[str, np.ndarray]]  # model name -> {"A": (p, p), "b": (p,), "n": () int64}
_FIELDS = ("A", "b", "n")

log = logging.getLogger(__name__)


def add_stats(total: Mapping[str, Mapping[str, np.ndarray]], delta: Mapping[str, Mapping[str, np.ndarray]]) -> Stats:
    """Model-wise sum of two Stats (models in either); StateFormatError when shapes disagree."""
    merged = {arm: {f: np.array(v) for f, v in parts.items()} for arm, parts in total.items()}
    for arm, parts in delta.items():
        if arm not in merged:
            merged[arm] = {f: np.array(parts[f]) for f in _FIELDS}
            continue
        for f in _FIELDS:
            if merged[arm][f].shape != np.shape(parts[f]):
                raise StateFormatError(f"shared state of model {arm!r}: field {f} has shape {merged[arm][f].shape}, "
                                       f"the update has {np.shape(parts[f])} (replicas with different dims?)")
            merged[arm][f] = merged[arm][f] + parts[f]
    return merged


def encode_stats(stats: Mapping[str, Mapping[str, np.ndarray]]) -> bytes:
    """Stats as safetensors bytes (tensor "<field>/<model>"); no pickle."""
    from safetensors.numpy import save

    return save({f"{f}/{arm}": np.ascontiguousarray(parts[f]) for arm, parts in stats.items() for f in _FIELDS})


def decode_stats(data: bytes | None) -> Stats:
    """Stats from `encode_stats` bytes (None: empty); StateFormatError for anything else."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    if not data:
        return {}
    try:
        arrays = load(data)
    except (SafetensorError, ValueError) as error:
        raise StateFormatError(f"shared state is not in bandit-router's format ({error})") from None
    stats: Stats = {}
    for name, array in arrays.items():
        field, _, arm = name.partition("/")
        if field not in _FIELDS:
            raise StateFormatError(f"shared state has an unknown tensor {name!r}")
        stats.setdefault(arm, {})[field] = array.reshape(()) if field == "n" else array  # safetensors stores () as (1,)
    if any(set(parts) != set(_FIELDS) for parts in stats.values()):
        raise StateFormatError("shared state is incomplete: every model needs A, b and n")
    for arm, parts in stats.items():  # the checks SQLiteStateStore makes of its rows
        A, b, n = parts["A"], parts["b"], parts["n"]
        if b.ndim != 1 or not b.size or A.shape != (b.size, b.size):
            problem = f"has shapes A {A.shape}, b {b.shape}; expected (p, p) and (p,)"
        elif A.dtype.kind != "f" or b.dtype.kind != "f" or not (np.isfinite(A).all() and np.isfinite(b).all()):
            problem = "holds NaN, infinite or non-float values in A or b"
        elif n.dtype.kind not in "iu" or n < 0:
            problem = f"holds n = {n.item()!r}; expected an integer >= 0"
        else:
            continue
        raise StateFormatError(f"shared state is not in bandit-router's format (model {arm!r} {problem})")
    return stats


class StateStore(ABC):
    """Merged learned state: the sum of every delta pushed by any replica, each (replica, seq) counted once."""

    @abstractmethod
    def claim_layout(self, layout: str) -> str:
        """Record `layout` if the store holds none yet; return the layout the store holds (the first one claimed).
        Raises StoreUnavailableError when the store cannot be reached."""

    @abstractmethod
    def merge(self, replica: str, seq: int, delta: Stats) -> Stats:
        """Add `delta` unless this replica's batch `seq` (increasing per replica) was already added; return the
        merged totals. Raises StoreUnavailableError when the store cannot be reached."""

    @abstractmethod
    def totals(self) -> Stats:
        """The merged totals. Raises StoreUnavailableError when the store cannot be reached."""

    def close(self) -> None:
        """Release connections."""

    def ping(self, timeout: float) -> None:
        """Check that the store answers, within `timeout` seconds and without retrying; StoreUnavailableError
        naming the store when it does not. This default reads the totals, bounded only by the store's own
        timeouts: stores override it."""
        self.totals()

    def count_source(self, slot: int, period: float, window: int, add: int) -> tuple[int, int] | None:
        """Add `add` to feedback counter `slot` of fixed window number `window` (of `period` seconds) and return
        that counter in `window` and in `window - 1`, dropping older windows' counters (the per-source cap of
        `bandit_router.quota`, shared by replicas). None: this store keeps no counters (each replica counts its
        own). Raises StoreUnavailableError when the store cannot be reached."""
        return None


class Replica:
    """One router's link to a StateStore: queues its deltas and syncs at most every `sync_every` seconds.

    Unsynced deltas stay queued in memory while the store is unreachable (at most two batches: the one whose
    push may or may not have landed, resent with the same seq, and everything newer), so no acknowledged
    feedback is lost while this process lives; a sync that fails leaves the local state serving as it was.
    """

    def __init__(self, store: StateStore, policy: Policy, sync_every: float, layout: str) -> None:
        """`policy` must declare `shares_state` (share, take_delta, install_totals, unsynced)."""
        self.store = store
        self.policy = policy
        self.sync_every = sync_every
        self.layout = layout
        self._layout_checked = False
        self.id = uuid.uuid4().hex
        self._seq = 0
        self._outbox: list[tuple[int, Stats]] = []
        self._sync_lock = threading.Lock()
        self._synced_at = -math.inf  # so the first maybe_sync (the Router's, at construction) syncs
        try:
            self.check_layout()  # a store holding another layout fails here, not at the first sync
        except StoreUnavailableError:
            pass  # checked again at every sync until the store answers
        policy.share()  # type: ignore[attr-defined]

    @property
    def unsynced(self) -> int:
        """Updates queued for the store (pushed batches not yet confirmed, plus updates since the last push)."""
        queued = sum(int(p["n"]) for _, delta in self._outbox for p in delta.values())
        return queued + self.policy.unsynced  # type: ignore[attr-defined]

    def check_layout(self) -> None:
        """Claim this replica's layout in the store (once); StateFormatError if the store holds another."""
        if self._layout_checked:
            return
        held = self.store.claim_layout(self.layout)
        if held != self.layout:
            raise StateFormatError(f"{self.store!r} holds state learned from vectors laid out as {held}; this router "
                                   f"builds {self.layout}, so their statistics cannot be added (use another "
                                   "namespace, or the same encoder and tasks in the same order)")
        self._layout_checked = True

    def sync(self, lock: threading.RLock) -> None:
        """Push queued deltas, pull the merged totals, install them (under the router's `lock`)."""
        with self._sync_lock:
            self._synced_at = time.monotonic()
            self.check_layout()
            with lock:
                fresh = self.policy.take_delta()  # type: ignore[attr-defined]
            if fresh:
                if len(self._outbox) >= 2:  # the newest queued batch was never sent: grow it
                    seq, queued = self._outbox[-1]
                    self._outbox[-1] = (seq, add_stats(queued, fresh))
                else:
                    self._seq += 1
                    self._outbox.append((self._seq, fresh))
            totals = None
            while self._outbox:
                seq, delta = self._outbox[0]
                totals = self.store.merge(self.id, seq, delta)
                self._outbox.pop(0)
            if totals is None:
                totals = self.store.totals()
            with lock:
                self.policy.install_totals(totals)  # type: ignore[attr-defined]

    def maybe_sync(self, lock: threading.RLock) -> None:
        """Sync if `sync_every` seconds have passed; failures are logged, never raised (local state keeps serving)."""
        if time.monotonic() - self._synced_at < self.sync_every or self._sync_lock.locked():
            return
        try:
            self.sync(lock)
        except BanditRouterError as error:
            log.warning("state sync failed; serving from local state, %d updates queued: %s", self.unsynced, error)

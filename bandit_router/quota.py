"""A per-source cap on feedback: how much any one source (a user, an API client) can teach the router.

It bounds reward poisoning by one source: at most about `limit` of its feedback counts per sliding window of
`window` seconds. A source must be an authenticated identity (an API key's owner, a logged-in user), never a
name the caller chooses freely: whoever can invent names gets a fresh cap per name.

Counts live in a fixed table of `slots` counters per window (a source hashes to one slot), for the current and
the previous fixed window, so memory is bounded whatever the number of sources and each feedback costs O(1).
The sliding count is estimated as current + previous x (share of the previous window still inside the sliding
one). Sources sharing a slot share a cap (with 65,536 slots, rarely). With a state store, the counters live in
the store, so the cap holds across replicas (up to one extra feedback per replica checking at the same moment);
while it cannot be reached, each replica counts on its own and asks the store again after RETRY_AFTER seconds.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import TYPE_CHECKING

import numpy as np

from .errors import ConfigError, FeedbackLimitError, StoreUnavailableError

if TYPE_CHECKING:
    from .store import StateStore

__all__ = ["SourceQuota"]

log = logging.getLogger(__name__)
RETRY_AFTER = 10.0  # seconds the counters stay local after the store failed to answer


class SourceQuota:
    """Counts each source's accepted feedback and refuses feedback beyond `limit` per `window` seconds."""

    def __init__(self, limit: int, window: float = 3600.0, slots: int = 65_536,
                 store: "StateStore | None" = None) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"source_limit must be an integer >= 1, got {limit!r}")
        if isinstance(window, bool) or not (isinstance(window, (int, float)) and 0 < window < float("inf")):
            raise ConfigError(f"source_window must be a number of seconds > 0, got {window!r}")
        if isinstance(slots, bool) or not isinstance(slots, int) or not 1 <= slots <= 2**24:
            raise ConfigError(f"slots must be an integer in [1, 2**24], got {slots!r}")
        self.limit = limit
        self.window = float(window)
        self.slots = slots
        self.store = store
        self._counts = np.zeros((2, slots), dtype=np.int64)  # row w % 2 counts fixed window w
        self._rows = [-1, -1]  # the window each row counts
        self._retry_at = 0.0  # monotonic time before which an unreachable store is not asked again

    def _slot(self, source: object) -> int:
        if not isinstance(source, str) or not source:
            raise ConfigError(f"source must be a non-empty string naming who gave the feedback "
                              f"(this router caps feedback per source), got {source!r:.100}")
        try:
            digest = hashlib.blake2b(source.encode("utf-8"), digest_size=8).digest()
        except UnicodeEncodeError:
            raise ConfigError("source must be valid UTF-8 text (it has a lone surrogate)") from None
        return int.from_bytes(digest, "little") % self.slots

    def _local(self, slot: int, window: int, add: int) -> tuple[int, int]:
        for w in (window, window - 1):
            if self._rows[w % 2] != w:
                self._counts[w % 2] = 0  # once per window: the row of window - 2 is reused
                self._rows[w % 2] = w
        self._counts[window % 2, slot] += add
        return int(self._counts[window % 2, slot]), int(self._counts[(window - 1) % 2, slot])

    def _counted(self, slot: int, window: int, add: int) -> tuple[int, int]:
        """(count in `window`, count in `window - 1`) of `slot`, after adding `add`: the store's while it answers
        (and keeps counters), this process's own otherwise."""
        local = self._local(slot, window, add)
        if self.store is not None and time.monotonic() >= self._retry_at:
            try:
                shared = self.store.count_source(slot, self.window, window, add)
            except StoreUnavailableError as error:
                self._retry_at = time.monotonic() + RETRY_AFTER  # the router's lock is held: do not wait every time
                log.warning("feedback counters unavailable; capping sources per replica for %g s: %s",
                            RETRY_AFTER, error)
            else:
                if shared is not None:
                    return shared
        return local

    def check(self, source: object, now: float | None = None) -> str:
        """The source, if it may give feedback now; FeedbackLimitError or ConfigError otherwise."""
        slot = self._slot(source)
        now = time.time() if now is None else now
        window = int(now // self.window)
        current, previous = self._counted(slot, window, 0)
        estimate = current + previous * (1.0 - (now / self.window - window))
        if estimate + 1 > self.limit:  # counting this one would exceed the cap
            raise FeedbackLimitError(f"source {source!r:.100} already gave about {estimate:.0f} feedback in the last "
                                     f"{self.window:g} s; source_limit allows {self.limit}", self.limit, self.window)
        return source  # type: ignore[return-value]

    def count(self, source: str, now: float | None = None) -> None:
        """Record one accepted feedback from `source`."""
        now = time.time() if now is None else now
        self._counted(self._slot(source), int(now // self.window), 1)

"""A per-source cap on feedback: how much any one source (a user, an API client) can teach the router.

It bounds reward poisoning: whatever one source sends, at most `limit` of its feedback counts per sliding
window of `window` seconds.
"""

from __future__ import annotations

import time
from collections import deque

from .errors import ConfigError, FeedbackLimitError

__all__ = ["SourceQuota"]


class SourceQuota:
    """Counts each source's accepted feedback in a sliding window and refuses feedback beyond `limit`."""

    def __init__(self, limit: int, window: float = 3600.0, max_sources: int = 100_000) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"source_limit must be an integer >= 1, got {limit!r}")
        if not (isinstance(window, (int, float)) and window > 0):
            raise ConfigError(f"source_window must be a number of seconds > 0, got {window!r}")
        self.limit = limit
        self.window = float(window)
        self.max_sources = max_sources
        self._seen: dict[str, deque[float]] = {}

    def check(self, source: object, now: float | None = None) -> str:
        """The source as a key, if it may give feedback now; FeedbackLimitError or ConfigError otherwise."""
        if not isinstance(source, str) or not source:
            raise ConfigError(f"source must be a non-empty string naming who gave the feedback "
                              f"(this router caps feedback per source), got {source!r}")
        now = time.monotonic() if now is None else now
        times = self._seen.get(source)
        if times:
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) >= self.limit:
                raise FeedbackLimitError(f"source {source!r} already gave {len(times)} feedback in the last "
                                         f"{self.window:g} s; source_limit allows {self.limit}")
        return source

    def count(self, source: str, now: float | None = None) -> None:
        """Record one accepted feedback from `source`."""
        now = time.monotonic() if now is None else now
        if source not in self._seen and len(self._seen) >= self.max_sources:
            stale = [s for s, t in self._seen.items() if not t or t[-1] <= now - self.window]
            for s in stale:
                del self._seen[s]
        self._seen.setdefault(source, deque()).append(now)

"""Merged learned state in Redis, shared by router replicas on many machines.

Keys (prefix "bandit-router:<namespace>:"): "state" holds the totals as safetensors bytes, "batches" a hash
of each replica's last applied batch, "layout" how the first replica built its vectors. A merge is an optimistic
transaction (WATCH "state" and "batches", add, MULTI/EXEC, retry on conflict), so concurrent pushes never
overwrite each other and a retried push is counted once.
For the totals to survive a Redis restart, run the server with persistence (e.g. appendonly yes).
"""

from __future__ import annotations

from typing import Any

from ..errors import StoreUnavailableError
from .base import StateStore, Stats, add_stats, decode_stats, encode_stats

__all__ = ["RedisStateStore"]


class RedisStateStore(StateStore):
    """A StateStore on a Redis server at `url` (redis://host:port/db; a password in it is never shown).

    `timeout` bounds every connect and command, so an unreachable server costs a replica at most that long
    per sync attempt.
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", namespace: str = "default",
                 timeout: float = 2.0) -> None:
        import redis

        self._redis: Any = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        kwargs = self._redis.connection_pool.connection_kwargs
        address = kwargs.get("path") or f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"  # unix:// or TCP
        self.where = f"{address}/{kwargs.get('db', 0)}"
        self.namespace = namespace
        self._state = f"bandit-router:{namespace}:state"
        self._batches = f"bandit-router:{namespace}:batches"
        self._layout = f"bandit-router:{namespace}:layout"

    def __repr__(self) -> str:
        return f"RedisStateStore({self.where!r}, namespace={self.namespace!r})"

    def _unavailable(self, error: Exception) -> StoreUnavailableError:
        return StoreUnavailableError(f"Redis at {self.where} is unavailable ({type(error).__name__})")

    def claim_layout(self, layout: str) -> str:
        import redis

        try:
            self._redis.setnx(self._layout, layout)
            held = self._redis.get(self._layout)
        except redis.RedisError as error:
            raise self._unavailable(error) from None
        return layout if held is None else held.decode()  # None: deleted in between, nothing to disagree with

    def merge(self, replica: str, seq: int, delta: Stats) -> Stats:
        import redis

        try:
            with self._redis.pipeline() as pipe:
                while True:
                    try:
                        pipe.watch(self._state, self._batches)
                        totals = decode_stats(pipe.get(self._state))
                        done = pipe.hget(self._batches, replica)
                        if done is not None and int(done) >= seq:
                            pipe.unwatch()
                            return totals
                        totals = add_stats(totals, delta)
                        pipe.multi()
                        pipe.set(self._state, encode_stats(totals))
                        pipe.hset(self._batches, replica, seq)
                        pipe.execute()
                        return totals
                    except redis.WatchError:
                        continue  # another replica merged first: read again
        except redis.RedisError as error:  # unreachable, timed out, refused (auth, read-only replica)
            raise self._unavailable(error) from None

    def totals(self) -> Stats:
        import redis

        try:
            return decode_stats(self._redis.get(self._state))
        except redis.RedisError as error:
            raise self._unavailable(error) from None

    def ping(self, timeout: float) -> None:
        """PING on a connection of its own, made like the store's: connecting and the answer each wait at most
        `timeout` seconds, and nothing is retried (the store's commands keep their own timeout)."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        pool = self._redis.connection_pool
        conn = pool.connection_class(**{**pool.connection_kwargs, "socket_timeout": timeout,
                                        "socket_connect_timeout": timeout, "retry": Retry(NoBackoff(), 0)})
        try:
            conn.send_command("PING")
            conn.read_response()
        except redis.RedisError as error:  # refused, timed out, wrong password, ...
            problem = f"{type(error).__name__}: {error}"
            raise StoreUnavailableError(f"Redis at {self.where} is unavailable ({problem})") from None
        finally:
            conn.disconnect()

    def close(self) -> None:
        self._redis.close()

    def count_source(self, slot: int, period: float, window: int, add: int) -> tuple[int, int]:
        import redis

        key = f"bandit-router:{self.namespace}:sources:{period:g}:"  # one hash per window, expiring after two
        try:
            with self._redis.pipeline() as pipe:  # MULTI/EXEC: the add and the reads see one state
                if add:
                    pipe.hincrby(key + str(window), str(slot), add)
                    pipe.expire(key + str(window), int(2 * period) + 1)
                pipe.hget(key + str(window), str(slot))
                pipe.hget(key + str(window - 1), str(slot))
                current, previous = pipe.execute()[-2:]
        except redis.RedisError as error:
            raise self._unavailable(error) from None
        return int(current or 0), int(previous or 0)

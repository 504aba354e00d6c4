"""`StateStore.ping`, the check /healthz makes: bounded by its timeout, never retried, naming the store, and
never creating a SQLite file that is gone."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from pathlib import Path
from typing import Iterator

import pytest

from bandit_router import StoreUnavailableError
from bandit_router.store import RedisStateStore, SQLiteStateStore, StateStore
from bandit_router.store.base import Stats

from .conftest import RedisServer, free_port

TIMEOUT = 0.5


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A server that accepts connections (its backlog) and never answers a command."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server


@pytest.fixture
def silent(listener: socket.socket) -> str:
    """The URL of `listener`."""
    return f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


def connections(listener: socket.socket) -> int:
    """How many connections `listener` holds in its backlog."""
    listener.settimeout(0.1)
    held = []
    try:
        while True:
            held.append(listener.accept()[0])
    except OSError:  # socket.timeout: none left
        pass
    for connection in held:
        connection.close()
    return len(held)


def timed_ping(store: StateStore) -> tuple[float, StoreUnavailableError]:
    """How long `store.ping(TIMEOUT)` took to fail, and its error."""
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as caught:
        store.ping(TIMEOUT)
    return time.monotonic() - started, caught.value


# -- Redis ---------------------------------------------------------------------------------------------------------
def test_redis_ping_answers_fails_while_the_server_is_down_and_answers_after_its_restart(
        redis_server: RedisServer) -> None:
    store = RedisStateStore(redis_server.url)
    store.ping(TIMEOUT)
    redis_server.stop()
    took, error = timed_ping(store)
    assert str(error).startswith(f"Redis at 127.0.0.1:{redis_server.port}/0 is unavailable (ConnectionError: ")
    assert took < TIMEOUT + 0.5
    redis_server.start()
    store.ping(TIMEOUT)  # a new connection: nothing stale from before the restart
    store.close()


@pytest.mark.parametrize("query", ["", "?retry_on_timeout=true"])
def test_redis_ping_of_a_server_that_never_answers_waits_its_timeout_once_not_the_stores(
        listener: socket.socket, silent: str, query: str) -> None:
    store = RedisStateStore(silent + query, timeout=10.0)  # the store's commands may wait 10 s; its ping does not
    took, error = timed_ping(store)
    assert TIMEOUT - 0.05 < took < 1.5 * TIMEOUT and connections(listener) == 1  # not retried
    assert f"Redis at {silent[len('redis://'):]} is unavailable (TimeoutError: " in str(error)


def test_redis_ping_uses_the_stores_settings_and_never_shows_the_password(redis_server: RedisServer) -> None:
    store = RedisStateStore(f"redis://:hunter2-secret@127.0.0.1:{redis_server.port}/99")  # 16 databases: 0-15
    _, error = timed_ping(store)
    assert "hunter2-secret" not in str(error) and "hunter2-secret" not in repr(store)
    assert str(error) == (f"Redis at 127.0.0.1:{redis_server.port}/99 is unavailable (ResponseError: DB index is "
                          "out of range)")


def test_redis_ping_of_a_port_nobody_listens_on_names_the_store() -> None:
    port = free_port()
    _, error = timed_ping(RedisStateStore(f"redis://127.0.0.1:{port}/2"))
    assert str(error).startswith(f"Redis at 127.0.0.1:{port}/2 is unavailable (ConnectionError: ")


def test_a_unix_socket_store_is_named_by_its_path(tmp_path: Path) -> None:
    path = tmp_path / "redis.sock"
    _, error = timed_ping(RedisStateStore(f"unix://{path}?db=1"))
    assert str(error).startswith(f"Redis at {path}/1 is unavailable (ConnectionError: ")


# -- SQLite --------------------------------------------------------------------------------------------------------
def test_sqlite_ping_answers_and_fails_once_the_file_is_moved_without_creating_it(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SQLiteStateStore(path)
    store.ping(TIMEOUT)
    path.rename(tmp_path / "moved.db")  # the store's own connection still reaches the moved file
    _, error = timed_ping(store)
    assert str(error) == f"SQLite file {str(path)!r} is unavailable (unable to open database file)"
    assert not path.exists()
    store.close()


def test_sqlite_ping_of_a_deleted_file_fails_without_creating_it(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SQLiteStateStore(path)
    path.unlink()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    timed_ping(store)
    assert not path.exists()
    store.close()


def test_sqlite_ping_of_a_file_that_is_no_longer_a_database_fails_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SQLiteStateStore(path)
    store.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.write_bytes(b"not a database at all" * 100)
    _, error = timed_ping(store)
    assert str(error) == f"SQLite file {str(path)!r} is unavailable (file is not a database)"


def test_sqlite_ping_reads_a_path_with_uri_characters_as_one_file_name(tmp_path: Path) -> None:
    path = tmp_path / "a?b#c%d.db"
    store = SQLiteStateStore(path)
    store.ping(TIMEOUT)
    store.close()
    for name in tmp_path.iterdir():
        name.unlink()
    timed_ping(store)
    assert list(tmp_path.iterdir()) == []  # not "a", cut at the "?"


# -- the default, and /healthz's probe -----------------------------------------------------------------------------
class Unreachable(StateStore):
    """A store without a ping of its own, whose every read fails."""

    def claim_layout(self, layout: str) -> str:
        raise StoreUnavailableError("unreachable for claim_layout")

    def merge(self, replica: str, seq: int, delta: Stats) -> Stats:
        raise StoreUnavailableError("unreachable for merge")

    def totals(self) -> Stats:
        raise StoreUnavailableError("unreachable for totals")


def test_a_store_without_a_ping_of_its_own_is_checked_by_reading_its_totals() -> None:
    with pytest.raises(StoreUnavailableError, match="unreachable for totals"):
        Unreachable().ping(TIMEOUT)


def test_the_health_probe_pings_the_store_once_for_concurrent_checks_and_logs_the_change(
        silent: str, caplog: pytest.LogCaptureFixture) -> None:
    from bandit_router.service.app import HEALTH_TIMEOUT, _StoreProbe

    store = RedisStateStore(silent, timeout=10.0)
    pings: list[float] = []
    ping = store.ping
    store.ping = lambda timeout: (pings.append(timeout), ping(timeout))[1]  # type: ignore[method-assign]
    probe = _StoreProbe(store)

    async def twice() -> list[bool]:
        return list(await asyncio.gather(probe.reachable(), probe.reachable()))

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="bandit_router.service.app"):
        results = asyncio.run(twice())
    took = time.monotonic() - started
    assert results == [False, False] and pings == [HEALTH_TIMEOUT]
    assert took < HEALTH_TIMEOUT + 0.5
    logged = [r.getMessage() for r in caplog.records]  # the ping's TimeoutError, or the wait's, whichever is first
    assert len(logged) == 1 and logged[0].startswith("health: ") and silent[len("redis://"):] in logged[0]

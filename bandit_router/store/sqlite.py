"""SQLite files: the decision log, and the learned state shared by the router processes of one machine.

The decision log holds every decision, its propensity, the call's outcome and the feedback. Prompt text is
stored only when the router is created with store_prompts=True, prompt vectors only with store_vectors=True
(off-policy evaluation needs them). Both use WAL mode and a busy timeout so several processes share one file,
and retry a busy database, so "database is locked" never reaches a caller: after `busy_timeout` seconds of
waiting a StoreUnavailableError is raised instead.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar
from urllib.parse import quote

import numpy as np

from ..decision import Decision
from ..errors import StateFormatError, StoreUnavailableError
from .base import StateStore, Stats, add_stats
from .log import DecisionLog

__all__ = ["SQLiteDecisionLog", "SQLiteStateStore", "SharedFile"]

T = TypeVar("T")


def connect(path: str, busy_timeout: float, synchronous: str = "FULL") -> sqlite3.Connection:
    """A WAL-mode connection in autocommit mode (transactions are explicit), retrying a busy database.

    synchronous=FULL makes each commit survive a power loss; NORMAL survives any process crash, and after a
    power loss keeps the file intact but may lose the last commits, at a small fraction of the cost.
    """
    def attempt() -> sqlite3.Connection:
        conn = sqlite3.connect(path, timeout=busy_timeout, check_same_thread=False, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={synchronous}")
        except BaseException:
            conn.close()
            raise
        return conn

    return retry_busy(attempt, path, busy_timeout)


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One `BEGIN IMMEDIATE` transaction (the file's single writer until it ends): committed, or rolled back on
    any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def retry_busy(call: Callable[[], T], path: str, busy_timeout: float) -> T:
    """`call()`, retried with jittered backoff while SQLite reports the database busy or locked."""
    deadline = time.monotonic() + busy_timeout
    pause = 0.001
    while True:
        try:
            return call()
        except sqlite3.DatabaseError as error:  # busy, locked, unreadable, not a database
            busy = isinstance(error, sqlite3.OperationalError) and ("locked" in str(error) or "busy" in str(error))
            if not busy:
                if "not a database" in str(error) or "malformed" in str(error):  # SQLITE_NOTADB, SQLITE_CORRUPT
                    raise StoreUnavailableError(f"SQLite file {path!r} is damaged ({error}); retrying will not "
                                                "help: restore it from a backup or replace it") from None
                raise StoreUnavailableError(f"SQLite file {path!r} failed: {error}") from None
            if time.monotonic() >= deadline:
                raise StoreUnavailableError(f"SQLite file {path!r} stayed busy for {busy_timeout:g} s") from None
            time.sleep(pause * (1 + random.random()))
            pause = min(pause * 2, 0.1)


class SharedFile:
    """One connection to a SQLite file that processes share, used by one thread at a time: `run(call)` runs
    `call` under a lock, retried while the file is busy (for up to `busy_timeout` seconds). `schema` is created
    on opening."""

    def __init__(self, path: str | Path, busy_timeout: float, schema: str, synchronous: str = "FULL") -> None:
        self.path, self.busy_timeout = str(path), busy_timeout
        self.conn = connect(self.path, busy_timeout, synchronous)
        self._lock = threading.Lock()
        self.run(lambda: self.conn.executescript(schema))

    def run(self, call: Callable[[], T]) -> T:
        with self._lock:
            return retry_busy(call, self.path, self.busy_timeout)

    def close(self) -> None:
        with self._lock:
            self.conn.close()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    route_id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    model TEXT NOT NULL,
    propensity REAL NOT NULL,
    cost_weight REAL NOT NULL,
    predictions TEXT NOT NULL,
    failed TEXT NOT NULL DEFAULT '[]',
    prompt TEXT,
    vector BLOB,
    status TEXT NOT NULL DEFAULT 'routed',
    error TEXT,
    cost REAL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    score REAL,
    rewarded_at REAL,
    task TEXT,
    predicted_cost REAL
);
"""


class SQLiteDecisionLog(DecisionLog):
    """Append-mostly log of decisions in a SQLite file (one connection, serialised by a lock).

    Commits use synchronous=NORMAL: a crashed process loses nothing it logged; a power loss may drop the last
    rows (a FULL commit costs an fsync, measured at ~7 ms against ~0.01 ms, which throttles many processes).
    """

    def __init__(self, path: str | Path, busy_timeout: float = 30.0) -> None:
        self.path = str(path)
        self.busy_timeout = busy_timeout
        self._conn = connect(self.path, busy_timeout, synchronous="NORMAL")
        self._lock = threading.Lock()
        with self._lock:
            retry_busy(self._create, self.path, busy_timeout)

    def _create(self) -> None:
        self._conn.executescript(_SCHEMA)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(decisions)")}
        if "task" not in columns:  # a log written before decisions recorded their task
            self._conn.execute("ALTER TABLE decisions ADD COLUMN task TEXT")
        if "predicted_cost" not in columns:  # ... or the predicted cost of the model that served
            self._conn.execute("ALTER TABLE decisions ADD COLUMN predicted_cost REAL")

    def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        with self._lock:
            retry_busy(lambda: self._conn.execute(sql, params), self.path, self.busy_timeout)

    def record_decision(self, decision: Decision, prompt: str | None = None, vector: np.ndarray | None = None) -> None:
        predictions = {"quality": dict(decision.predicted_quality), "cost": dict(decision.predicted_cost),
                       "probabilities": dict(decision.probabilities)}
        blob = None if vector is None else np.asarray(vector, dtype=np.float32).tobytes()
        self._execute(
            "INSERT INTO decisions (route_id, created_at, model, propensity, cost_weight, predictions, failed,"
            " prompt, vector, task, predicted_cost) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(route_id) DO UPDATE SET"  # a fallback keeps prompt, error
            " model=excluded.model, propensity=excluded.propensity, failed=excluded.failed,"
            " predicted_cost=excluded.predicted_cost",
            (decision.route_id, decision.created_at, decision.model, decision.propensity, decision.cost_weight,
             json.dumps(predictions, allow_nan=True), json.dumps(list(decision.failed)), prompt, blob, decision.task,
             decision.predicted_cost.get(decision.model)))

    def record_call(self, route_id: str, cost: float, prompt_tokens: int | None = None,
                    completion_tokens: int | None = None) -> None:
        self._execute("UPDATE decisions SET status='served', cost=?, prompt_tokens=?, completion_tokens=?"
                      " WHERE route_id=?", (cost, prompt_tokens, completion_tokens, route_id))

    def record_cut(self, route_id: str, charged: float | None) -> None:
        self._execute("UPDATE decisions SET status='served', cost=?, error='cut' WHERE route_id=?", (charged, route_id))

    def record_failure(self, route_id: str, error: BaseException) -> None:
        self._execute("UPDATE decisions SET status='failed', error=? WHERE route_id=?",
                      (type(error).__name__, route_id))

    def record_feedback(self, route_id: str, score: float) -> None:
        self._execute("UPDATE decisions SET score=?, rewarded_at=? WHERE route_id=?", (score, time.time(), route_id))

    def rows(self) -> Iterator[dict[str, Any]]:
        return self._select("", ())

    def served_unrated(self, since: float) -> Iterator[dict[str, Any]]:
        return self._select("WHERE status='served' AND score IS NULL AND created_at > ?", (since,))

    def _select(self, where: str, params: tuple[Any, ...]) -> Iterator[dict[str, Any]]:
        """The decisions `where` selects, oldest first, decoded."""
        with self._lock:
            cursor = self._conn.execute(f"SELECT * FROM decisions {where} ORDER BY created_at, rowid", params)
            names = [c[0] for c in cursor.description]
            rows = cursor.fetchall()
        for values in rows:
            row = dict(zip(names, values))
            row["predictions"] = json.loads(row["predictions"])
            row["failed"] = json.loads(row["failed"])
            if row["vector"] is not None:
                row["vector"] = np.frombuffer(row["vector"], dtype=np.float32)
            yield row

    def close(self) -> None:
        with self._lock:
            self._conn.close()


_STATE_SCHEMA = """
CREATE TABLE IF NOT EXISTS learned_state (
    namespace TEXT NOT NULL,
    model TEXT NOT NULL,
    A BLOB NOT NULL,
    b BLOB NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (namespace, model)
);
CREATE TABLE IF NOT EXISTS learned_layout (
    namespace TEXT PRIMARY KEY,
    layout TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS learned_batches (
    namespace TEXT NOT NULL,
    replica TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (namespace, replica)
);
"""


class SQLiteStateStore(StateStore):
    """Merged learned state in a SQLite file, shared by the router processes of one machine.

    Each merge is one `BEGIN IMMEDIATE` transaction (one writer at a time): it checks the replica's last
    applied batch, adds the delta and records the batch, so a retried push is counted once. The file may be
    the decision log's. `namespace` lets several routers share a file.
    """

    def __init__(self, path: str | Path, namespace: str = "default", busy_timeout: float = 60.0) -> None:
        self.path = str(path)
        self.namespace = namespace
        self._file = SharedFile(self.path, busy_timeout, _STATE_SCHEMA)

    def __repr__(self) -> str:
        return f"SQLiteStateStore({self.path!r}, namespace={self.namespace!r})"

    def _read(self) -> Stats:
        rows = self._file.conn.execute("SELECT model, A, b, n FROM learned_state WHERE namespace=?",
                                       (self.namespace,)).fetchall()
        return {model: self._decode(model, A, b, n) for model, A, b, n in rows}

    def _decode(self, model: str, A: object, b: object, n: object) -> dict[str, np.ndarray]:
        """One learned_state row as Stats arrays; StateFormatError naming this store, the model and the defect."""
        def damaged(problem: str) -> StateFormatError:
            return StateFormatError(f"shared state in {self!r} is not in bandit-router's format "
                                    f"(learned_state row of model {model!r} {problem})")

        if not isinstance(A, bytes) or not isinstance(b, bytes):
            raise damaged(f"holds A as {type(A).__name__}, b as {type(b).__name__}; expected bytes")
        if not b or len(b) % 8:
            raise damaged(f"holds {len(b)} bytes for b; expected 8 x p, p >= 1")
        p = len(b) // 8
        if len(A) != 8 * p * p:
            raise damaged(f"holds {len(A)} bytes for A; expected 8 x {p} x {p}")
        if type(n) is not int or n < 0:
            raise damaged(f"holds n = {n!r}; expected an integer >= 0")
        arrays = {"A": np.frombuffer(A, dtype=np.float64).reshape(p, p).copy(),
                  "b": np.frombuffer(b, dtype=np.float64).copy(), "n": np.array(n, dtype=np.int64)}
        if not (np.isfinite(arrays["A"]).all() and np.isfinite(arrays["b"]).all()):
            raise damaged("holds NaN or infinite values in A or b")
        return arrays

    def _merge_once(self, replica: str, seq: int, delta: Stats) -> Stats:
        with immediate(self._file.conn) as conn:
            row = conn.execute("SELECT seq FROM learned_batches WHERE namespace=? AND replica=?",
                               (self.namespace, replica)).fetchone()
            totals = self._read()
            if row is None or row[0] < seq:
                totals = add_stats(totals, delta)
                conn.executemany(
                    "INSERT OR REPLACE INTO learned_state (namespace, model, A, b, n) VALUES (?, ?, ?, ?, ?)",
                    [(self.namespace, arm, totals[arm]["A"].astype(np.float64).tobytes(),
                      totals[arm]["b"].astype(np.float64).tobytes(), int(totals[arm]["n"])) for arm in delta])
                conn.execute("INSERT OR REPLACE INTO learned_batches (namespace, replica, seq) VALUES (?, ?, ?)",
                             (self.namespace, replica, seq))
        return totals

    def _claim_once(self, layout: str) -> str:
        conn = self._file.conn
        conn.execute("INSERT OR IGNORE INTO learned_layout (namespace, layout) VALUES (?, ?)", (self.namespace, layout))
        return conn.execute("SELECT layout FROM learned_layout WHERE namespace=?", (self.namespace,)).fetchone()[0]

    def claim_layout(self, layout: str) -> str:
        return self._file.run(lambda: self._claim_once(layout))

    def merge(self, replica: str, seq: int, delta: Stats) -> Stats:
        return self._file.run(lambda: self._merge_once(replica, seq, delta))

    def totals(self) -> Stats:
        return self._file.run(self._read)

    def ping(self, timeout: float) -> None:
        """Open the file anew and read its schema, waiting at most `timeout` seconds for a busy file, once. Not
        through the store's connection, which still reaches a file moved or deleted since; and read-write, not
        create: a missing file is unavailable, never made empty."""
        try:
            with closing(sqlite3.connect(f"file:{quote(self.path)}?mode=rw", uri=True, timeout=timeout)) as conn:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as error:  # missing, unreadable, not a database, busy past `timeout`
            raise StoreUnavailableError(f"SQLite file {self.path!r} is unavailable ({error})") from None

    def close(self) -> None:
        self._file.close()

    def _count_once(self, slot: int, period: float, window: int, add: int) -> tuple[int, int]:
        conn = self._file.conn
        if not getattr(self, "_counters_ready", False):  # created on first use
            conn.execute("CREATE TABLE IF NOT EXISTS source_counts (namespace TEXT NOT NULL, period REAL NOT NULL, "
                         "window INTEGER NOT NULL, slot INTEGER NOT NULL, count INTEGER NOT NULL, "
                         "PRIMARY KEY (namespace, period, window, slot))")
            self._counters_ready = True
        if add:
            with immediate(conn):
                conn.execute("INSERT INTO source_counts VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
                             " count = count + excluded.count", (self.namespace, period, window, slot, add))
                conn.execute("DELETE FROM source_counts WHERE namespace=? AND period=? AND window < ?",
                             (self.namespace, period, window - 1))
        counts = dict(conn.execute("SELECT window, count FROM source_counts WHERE namespace=? AND period=? AND "
                                   "window IN (?, ?) AND slot=?", (self.namespace, period, window, window - 1, slot)))
        return counts.get(window, 0), counts.get(window - 1, 0)

    def count_source(self, slot: int, period: float, window: int, add: int) -> tuple[int, int]:
        return self._file.run(lambda: self._count_once(slot, period, window, add))

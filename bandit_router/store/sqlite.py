"""The decision log in a SQLite file: every decision, its propensity, the call's outcome and the feedback.

Prompt text is stored only when the router is created with store_prompts=True, prompt vectors only with
store_vectors=True (off-policy evaluation needs them). WAL mode and a busy timeout let several processes
share one file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..decision import Decision

__all__ = ["DecisionLog"]

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
    rewarded_at REAL
);
"""


class DecisionLog:
    """Append-mostly log of decisions in a SQLite file (one connection, serialised by a lock)."""

    def __init__(self, path: str | Path, busy_timeout: float = 30.0) -> None:
        self.path = str(path)
        self._conn = sqlite3.connect(self.path, timeout=busy_timeout, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            self._conn.executescript(_SCHEMA)

    def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        with self._lock:
            self._conn.execute(sql, params)

    def record_decision(self, decision: Decision, prompt: str | None = None, vector: np.ndarray | None = None) -> None:
        predictions = {"quality": dict(decision.predicted_quality), "cost": dict(decision.predicted_cost),
                       "probabilities": dict(decision.probabilities)}
        blob = None if vector is None else np.asarray(vector, dtype=np.float32).tobytes()
        self._execute(
            "INSERT OR REPLACE INTO decisions (route_id, created_at, model, propensity, cost_weight, predictions,"
            " failed, prompt, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (decision.route_id, decision.created_at, decision.model, decision.propensity, decision.cost_weight,
             json.dumps(predictions, allow_nan=True), json.dumps(list(decision.failed)), prompt, blob))

    def record_call(self, route_id: str, cost: float, prompt_tokens: int, completion_tokens: int) -> None:
        self._execute("UPDATE decisions SET status='served', cost=?, prompt_tokens=?, completion_tokens=?"
                      " WHERE route_id=?", (cost, prompt_tokens, completion_tokens, route_id))

    def record_failure(self, route_id: str, error: BaseException) -> None:
        self._execute("UPDATE decisions SET status='failed', error=? WHERE route_id=?",
                      (type(error).__name__, route_id))

    def record_feedback(self, route_id: str, score: float) -> None:
        self._execute("UPDATE decisions SET score=?, rewarded_at=? WHERE route_id=?", (score, time.time(), route_id))

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every logged decision as a dict, oldest first (vectors as float32 arrays)."""
        with self._lock:
            cursor = self._conn.execute("SELECT * FROM decisions ORDER BY created_at, rowid")
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

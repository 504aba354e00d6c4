"""A SQLite state store whose learned_state rows were damaged: its read names the store, model and defect
(StateFormatError), and routers on it keep serving from local state with a warning, as with a damaged Redis."""

from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from bandit_router import Limits, Router, StateFormatError, StoreUnavailableError
from bandit_router.store import SQLiteStateStore

from .workers import DIM, MODELS, fake_encoder, model_cards

P = DIM + 1  # the policy's vector: the encoder's 4 dims and an intercept
MODEL = MODELS[0]
NAMESPACE = "team-a"

# kind of damage -> (SET clause of an UPDATE of MODEL's row, its parameters, what the error must say)
DAMAGE = {
    "A not a multiple of 8 bytes": ("A = x'0102'", (), "holds 2 bytes for A; expected 8 x 5 x 5"),
    "A not len(b) squared": ("b = substr(b, 1, 32)", (), "holds 200 bytes for A; expected 8 x 4 x 4"),
    "A not a blob": ("A = 'text'", (), "holds A as str, b as bytes; expected bytes"),
    "b empty": ("b = x''", (), "holds 0 bytes for b; expected 8 x p, p >= 1"),
    "b not a multiple of 8 bytes": ("b = x'010203'", (), "holds 3 bytes for b; expected 8 x p, p >= 1"),
    "NaN in A": ("A = ?", (np.full((P, P), np.nan).tobytes(),), "holds NaN or infinite values in A or b"),
    "infinity in b": ("b = ?", (np.full(P, np.inf).tobytes(),), "holds NaN or infinite values in A or b"),
    "negative n": ("n = -5", (), "holds n = -5; expected an integer >= 0"),
    "fractional n": ("n = 1.5", (), "holds n = 1.5; expected an integer >= 0"),
    "text n": ("n = 'many'", (), "holds n = 'many'; expected an integer >= 0"),
}


def router_on(path: Path) -> Router:
    return Router(model_cards(), encoder=fake_encoder, seed=0, limits=Limits(sync_every=0),
                  state_store=SQLiteStateStore(path, namespace=NAMESPACE))


def fill(path: Path) -> None:
    """A store holding one update of every model, pushed by another replica."""
    store = SQLiteStateStore(path, namespace=NAMESPACE)
    store.merge("other", 1, {m: {"A": np.eye(P), "b": np.ones(P), "n": np.array(1)} for m in MODELS})
    store.close()


def damage(path: Path, clause: str, params: tuple[object, ...]) -> None:
    with sqlite3.connect(path) as conn:
        assert conn.execute(f"UPDATE learned_state SET {clause} WHERE namespace=? AND model=?",
                            (*params, NAMESPACE, MODEL)).rowcount == 1


def sync_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
            and r.getMessage().startswith("state sync failed; serving from local state")]


@pytest.mark.parametrize("kind", DAMAGE)
def test_the_store_names_the_model_and_the_damage(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    fill(path)
    clause, params, cause = DAMAGE[kind]
    damage(path, clause, params)
    store = SQLiteStateStore(path, namespace=NAMESPACE)
    message = (f"shared state in SQLiteStateStore('{path}', namespace='{NAMESPACE}') is not in bandit-router's "
               f"format (learned_state row of model '{MODEL}' {cause})")
    for read in (store.totals, lambda: store.merge("r", 1, {})):
        with pytest.raises(StateFormatError, match=re.escape(message)):
            read()
    assert SQLiteStateStore(path, namespace="other").totals() == {}  # another namespace of the file is intact


@pytest.mark.parametrize("kind", DAMAGE)
def test_routers_keep_routing_on_a_damaged_store_and_say_why(kind: str, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state.db"
    fill(path)
    running = router_on(path)
    with sqlite3.connect(path) as conn:
        intact = conn.execute("SELECT A, b, n FROM learned_state WHERE model=?", (MODEL,)).fetchone()
    clause, params, cause = DAMAGE[kind]
    damage(path, clause, params)
    caplog.set_level(logging.WARNING)
    decision = running.route("hello")  # a router that was running when the row was damaged ...
    running.feedback(decision.route_id, 1.0)
    running.route("hello again")
    fresh = router_on(path)  # ... and one built against the damaged file
    fresh.route("hello")
    warnings = sync_warnings(caplog)
    assert len(warnings) >= 4 and all(f"model '{MODEL}' {cause}" in w for w in warnings)
    assert running.replica is not None and running.replica.unsynced == 1  # the feedback waits for the store
    with sqlite3.connect(path) as conn:  # repaired: the queued feedback lands, once
        conn.execute("UPDATE learned_state SET A=?, b=?, n=? WHERE model=?", (*intact, MODEL))
    running.sync()
    assert sum(int(t["n"]) for t in SQLiteStateStore(path, namespace=NAMESPACE).totals().values()) == len(MODELS) + 1


def test_a_file_that_is_not_a_database_is_called_damaged(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_text("garbage\n")
    with pytest.raises(StoreUnavailableError, match=r"is damaged \(file is not a database\); retrying will not help"):
        SQLiteStateStore(path)


def test_a_truncated_database_is_called_damaged(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SQLiteStateStore(path)
    for seq in range(1, 101):
        store.merge("r", seq, {f"model {seq}": {"A": np.eye(20), "b": np.ones(20), "n": np.array(1)}})
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with path.open("r+b") as file:
        file.truncate(path.stat().st_size // 3)
    with pytest.raises(StoreUnavailableError, match=r"is damaged \(database disk image is malformed\); retrying will "
                                                    r"not help"):
        SQLiteStateStore(path).totals()

"""Budgets whose ledger every replica of the service shares: in Redis, or in the SQLite file of the learned state.

Amounts are kept as integer pico-USD (exact sums), and each reserve, settle and release is atomic across
replicas (one Lua script in Redis, one `BEGIN IMMEDIATE` transaction in SQLite): together they never reserve more
than an account's limit. Each period's spend and holds are kept per account; a replica that dies with calls in
flight leaves their holds open: they stay counted (at their worst case) until the period ends, so a crash can
make the budget stop early but never overspend. Pacing needs one process's view of the spend, so a shared ledger
enforces the hard cap only (pacer "none").

Redis keys (prefix "bandit-router:<namespace>:budget"): ":<period>" a hash of each account's spend and holds in
that period (expiring two periods later), ":total" the lifetime spend, ":holds" the open holds by a random id (a
counter would restart if Redis lost its data, and one replica's settle could close another's hold). SQLite tables: budget_ledger (a row per namespace, period and account; periods older than the previous
one are dropped), budget_holds, budget_total.
"""

from __future__ import annotations

import math
import secrets
import sqlite3
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable

from ..budget import Budget, Reservation
from ..errors import BudgetExceededError, ConfigError, StoreUnavailableError
from ..store.sqlite import SharedFile, immediate

__all__ = ["SharedBudget", "RedisBudget", "SQLiteBudget"]

PICO = 1e12

_RESERVE = """
local amount = tonumber(ARGV[1])
local function available(account, limit)
  local spent = tonumber(redis.call('HGET', KEYS[1], 'spent:' .. account) or '0')
  local held = tonumber(redis.call('HGET', KEYS[1], 'held:' .. account) or '0')
  return limit - spent - held
end
local left = available('', tonumber(ARGV[2]))
if amount > left then return {0, 'g', tostring(left)} end
if ARGV[3] ~= '' then
  left = available(ARGV[3], tonumber(ARGV[4]))
  if amount > left then return {0, 'k', tostring(left)} end
end
local id = ARGV[7]
redis.call('HINCRBY', KEYS[1], 'held:', amount)
if ARGV[3] ~= '' then redis.call('HINCRBY', KEYS[1], 'held:' .. ARGV[3], amount) end
if tonumber(ARGV[6]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[6]) end
redis.call('HSET', KEYS[2], id, ARGV[5] .. '|' .. ARGV[1] .. '|' .. ARGV[3])
return {id, '', ''}
"""

_CLOSE = """
local hold = redis.call('HGET', KEYS[1], ARGV[1])
if not hold then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
local period, amount, account = string.match(hold, '^([^|]*)|([^|]*)|(.*)$')
local ledger = ARGV[3] .. ':' .. period
local cost = tonumber(ARGV[2])
for _, name in ipairs(account == '' and {''} or {'', account}) do
  redis.call('HINCRBY', ledger, 'held:' .. name, -tonumber(amount))
  if cost >= 0 then
    redis.call('HINCRBY', ledger, 'spent:' .. name, cost)
    redis.call('HINCRBY', KEYS[2], name, cost)
  end
end
return 1
"""


def _pico(usd: Any, name: str) -> int:
    if isinstance(usd, bool) or not isinstance(usd, (int, float)) or not 0 <= usd < math.inf:
        raise ConfigError(f"{name} must be a finite number >= 0 (USD), got {usd!r}")
    return math.ceil(float(usd) * PICO)


class SharedBudget(Budget, ABC):
    """A Budget (hard cap per period, per key) whose ledger is shared by every replica using the same store and
    `namespace`; periods are in seconds from `origin` (default Unix time 0, so daily periods are UTC days on every
    replica). Subclasses keep the ledger: `_hold`, `_close`, `_balance` and `_lifetime`, each atomic."""

    where = "a shared ledger"

    def __init__(self, limit: float, period: float | None = None, key_limit: float | None = None,
                 pacer: str = "none", bins: int = 20, origin: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if pacer != "none":
            raise ConfigError(f"a budget kept in {self.where} enforces the hard cap only (pacing needs one "
                              f"process's view of the spend): budget.pacer must be 'none', got {pacer!r}")
        origin = 0.0 if origin is None and period is not None else origin
        super().__init__(limit, period=period, pacer="none", bins=bins, key_limit=key_limit, origin=origin,
                         clock=clock)
        self._origin_at = origin or 0.0

    @abstractmethod
    def _hold(self, period: int, account: str, amount: int, limit: int, key_limit: int) -> tuple[int, str, int]:
        """Hold `amount` in the global account and in `account` (unless it is ""), each within its limit:
        (hold id, "", 0), or (0, "g" or "k" for the account that lacks it, what that account has left)."""

    @abstractmethod
    def _close(self, hold: int, cost: int) -> bool:
        """Drop hold `hold`, adding `cost` to its accounts' spend unless cost < 0; False if it is not held."""

    @abstractmethod
    def _balance(self, period: int, account: str) -> tuple[int, int]:
        """(spent, held) of `account` in `period`."""

    @abstractmethod
    def _lifetime(self, account: str) -> int:
        """`account`'s settled spend over every period."""

    def _period(self) -> int:
        return 0 if self.period is None else int((self.clock() - self._origin_at) // self.period)

    def _account(self, key: str | None) -> str:
        return "" if key is None or self.key_limit is None else f"k:{key}"

    def _read(self, key: str | None) -> tuple[float, float, float]:
        """(spent this period, held, limit) of `key`'s account (the global one when None)."""
        account = self._account(key)
        spent, held = (v / PICO for v in self._balance(self._period(), account))
        return spent, held, self.key_limit if account else self.limit

    def _draws_on(self, key: str | None) -> list[tuple[float, float, float]]:
        """`_read` of every account a call under `key` draws on: the global one, and the key's."""
        return [self._read(None)] + ([self._read(key)] if self._account(key) else [])

    # -- the ledger -----------------------------------------------------------------------------------------
    def fits(self, amount: float, key: str | None = None) -> bool:
        return all(amount <= limit - spent - held for spent, held, limit in self._draws_on(key))

    def reserve(self, amount: float, key: str | None = None, expected: float | None = None) -> Reservation:
        """Hold `amount` in the shared ledger (`expected` is kept on the reservation; pacing is per process)."""
        pico = _pico(amount, "amount")
        account = self._account(key)
        hold, which, left = self._hold(self._period(), account, pico, _pico(self.limit, "limit"),
                                       _pico(self.key_limit, "key_limit") if account else 0)
        if not hold:
            name, limit = ("the budget", self.limit) if which == "g" else (f"key {key!r}", self.key_limit)
            raise BudgetExceededError(f"{name} cannot cover a call's worst-case cost of ${amount:.6g}: "
                                      f"${left / PICO:.6g} of ${limit:.6g} left this period ({self.where})")
        return Reservation(hold, amount, key, amount if expected is None else min(expected, amount))

    def enlarge(self, reservation: Reservation, amount: float, expected: float | None = None) -> Reservation:
        """A new hold of `amount`, then `reservation` released: the whole amount must fit beside the old hold for a
        moment (stricter than `Budget.enlarge`; a shared ledger counts no queries)."""
        bigger = self.reserve(amount, reservation.key, expected)
        self.release(reservation)
        return bigger

    def _finish(self, reservation: Reservation, cost: int) -> None:
        if not self._close(reservation.id, cost):
            raise ConfigError(f"reservation {reservation.id} is not held (already settled or released?)")

    def settle(self, reservation: Reservation, cost: float) -> None:
        self._finish(reservation, _pico(cost, "cost"))

    def release(self, reservation: Reservation) -> None:
        self._finish(reservation, -1)

    def save(self, path: str | Path) -> None:
        """Refused: the ledger lives in the store, which keeps it across restarts (it wrote an empty ledger)."""
        raise self._kept_in_store()

    def restore(self, path: str | Path) -> None:
        """Refused, as `save`."""
        raise self._kept_in_store()

    def _kept_in_store(self) -> ConfigError:
        return ConfigError(f"a budget kept in {self.where} lives in its store, which keeps it across restarts: save "
                           "and restore are for a process's own Budget (back up the store instead)")

    # -- reading the ledger ---------------------------------------------------------------------------------
    def spent(self, key: str | None = None) -> float:
        return self._read(key)[0]

    def reserved(self, key: str | None = None) -> float:
        return self._read(key)[1]

    def remaining(self, key: str | None = None) -> float:
        return min(limit - spent - held for spent, held, limit in self._draws_on(key))

    def total_spent(self, key: str | None = None) -> float:
        return self._lifetime(self._account(key)) / PICO


class RedisBudget(SharedBudget):
    """A SharedBudget kept in Redis at `url`."""

    where = "Redis"

    def __init__(self, url: str, limit: float, namespace: str = "default", period: float | None = None,
                 key_limit: float | None = None, pacer: str = "none", bins: int = 20, origin: float | None = None,
                 timeout: float = 2.0, clock: Callable[[], float] = time.time) -> None:
        import redis

        super().__init__(limit, period=period, key_limit=key_limit, pacer=pacer, bins=bins, origin=origin,
                         clock=clock)
        self._redis: Any = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._prefix = f"bandit-router:{namespace}:budget"
        self._reserve = self._redis.register_script(_RESERVE)
        self._close_script = self._redis.register_script(_CLOSE)

    def _call(self, fn: Callable[[], Any]) -> Any:
        import redis

        try:
            return fn()
        except redis.RedisError as error:
            raise StoreUnavailableError(f"the budget ledger in Redis is unavailable ({type(error).__name__})") from None

    def _hold(self, period: int, account: str, amount: int, limit: int, key_limit: int) -> tuple[int, str, int]:
        ttl = 0 if self.period is None else math.ceil(2 * self.period)
        keys = [f"{self._prefix}:{period}", f"{self._prefix}:holds"]
        hold_id = secrets.randbits(52) + 1  # random, not a counter: a counter restarts when Redis loses its data,
        # and a replica's settle of a hold made before would close another's (exact as a Lua double)
        hold, which, left = self._call(lambda: self._reserve(keys=keys, args=[amount, limit, account, key_limit,
                                                                             period, ttl, hold_id]))
        return int(hold), which.decode() if isinstance(which, bytes) else which, int(float(left or 0))

    def _close(self, hold: int, cost: int) -> bool:
        keys = [f"{self._prefix}:holds", f"{self._prefix}:total"]
        return bool(self._call(lambda: self._close_script(keys=keys, args=[hold, cost, self._prefix])))

    def _balance(self, period: int, account: str) -> tuple[int, int]:
        values = self._call(lambda: self._redis.hmget(f"{self._prefix}:{period}", f"spent:{account}",
                                                      f"held:{account}"))
        return int(values[0] or 0), int(values[1] or 0)

    def _lifetime(self, account: str) -> int:
        return int(self._call(lambda: self._redis.hget(f"{self._prefix}:total", account)) or 0)


_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS budget_ledger (
    namespace TEXT NOT NULL,
    period INTEGER NOT NULL,
    account TEXT NOT NULL,
    spent INTEGER NOT NULL DEFAULT 0,
    held INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace, period, account)
);
CREATE TABLE IF NOT EXISTS budget_holds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT NOT NULL,
    period INTEGER NOT NULL,
    account TEXT NOT NULL,
    amount INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS budget_total (
    namespace TEXT NOT NULL,
    account TEXT NOT NULL,
    spent INTEGER NOT NULL,
    PRIMARY KEY (namespace, account)
);
"""


class SQLiteBudget(SharedBudget):
    """A SharedBudget kept in the SQLite file at `path` (e.g. the learned state's), shared by the service
    processes of one machine. A busy file is waited for up to `busy_timeout` seconds, then StoreUnavailableError."""

    where = "the SQLite file"

    def __init__(self, path: str | Path, limit: float, namespace: str = "default", period: float | None = None,
                 key_limit: float | None = None, pacer: str = "none", bins: int = 20, origin: float | None = None,
                 busy_timeout: float = 30.0, clock: Callable[[], float] = time.time) -> None:
        super().__init__(limit, period=period, key_limit=key_limit, pacer=pacer, bins=bins, origin=origin,
                         clock=clock)
        self.path, self.namespace = str(path), namespace
        self._file = SharedFile(self.path, busy_timeout, _SQLITE_SCHEMA)

    def _hold(self, period: int, account: str, amount: int, limit: int, key_limit: int) -> tuple[int, str, int]:
        def hold() -> tuple[int, str, int]:
            with immediate(self._file.conn) as conn:
                for name, which, cap in [("", "g", limit)] + ([(account, "k", key_limit)] if account else []):
                    spent, held = self._row(conn, period, name)
                    if amount > cap - spent - held:
                        return 0, which, cap - spent - held
                conn.execute("DELETE FROM budget_ledger WHERE namespace=? AND period < ?", (self.namespace, period - 1))
                for name in [""] + ([account] if account else []):
                    conn.execute("INSERT INTO budget_ledger (namespace, period, account, held) VALUES (?, ?, ?, ?)"
                                 " ON CONFLICT DO UPDATE SET held = held + excluded.held",
                                 (self.namespace, period, name, amount))
                cursor = conn.execute("INSERT INTO budget_holds (namespace, period, account, amount)"
                                      " VALUES (?, ?, ?, ?)", (self.namespace, period, account, amount))
                return int(cursor.lastrowid), "", 0

        return self._file.run(hold)

    def _close(self, hold: int, cost: int) -> bool:
        def close() -> bool:
            with immediate(self._file.conn) as conn:
                row = conn.execute("SELECT period, account, amount FROM budget_holds WHERE id=? AND namespace=?",
                                   (hold, self.namespace)).fetchone()
                if row is None:
                    return False
                period, account, amount = row
                conn.execute("DELETE FROM budget_holds WHERE id=?", (hold,))
                for name in [""] + ([account] if account else []):
                    conn.execute("UPDATE budget_ledger SET held = held - ?, spent = spent + ? WHERE namespace=? AND"
                                 " period=? AND account=?", (amount, max(cost, 0), self.namespace, period, name))
                    if cost >= 0:
                        conn.execute("INSERT INTO budget_total VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET"
                                     " spent = spent + excluded.spent", (self.namespace, name, cost))
                return True

        return self._file.run(close)

    def _row(self, conn: sqlite3.Connection, period: int, account: str) -> tuple[int, int]:
        row = conn.execute("SELECT spent, held FROM budget_ledger WHERE namespace=? AND period=? AND account=?",
                           (self.namespace, period, account)).fetchone()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    def _balance(self, period: int, account: str) -> tuple[int, int]:
        return self._file.run(lambda: self._row(self._file.conn, period, account))

    def _lifetime(self, account: str) -> int:
        row = self._file.run(lambda: self._file.conn.execute(
            "SELECT spent FROM budget_total WHERE namespace=? AND account=?", (self.namespace, account)).fetchone())
        return 0 if row is None else int(row[0])

    def close(self) -> None:
        self._file.close()

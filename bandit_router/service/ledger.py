"""A budget whose ledger lives in Redis, so that every replica of the service spends from the same accounts.

Amounts are kept as integer pico-USD (exact sums), and each reserve, settle and release is one Lua script, so
it is atomic across replicas: together they never reserve more than an account's limit. Keys (prefix
"bandit-router:<namespace>:budget"): ":<period>" a hash of each account's spend and holds in that period
(expiring two periods later), ":total" the lifetime spend, ":holds" the open holds, ":ids" the hold counter.
A replica that dies with calls in flight leaves their holds open: they stay counted (at their worst case)
until the period ends, so a crash can make the budget stop early but never overspend.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

from ..budget import Budget, Reservation
from ..errors import BudgetExceededError, ConfigError, StoreUnavailableError

__all__ = ["SharedBudget"]

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
local id = redis.call('INCR', KEYS[3])
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


class SharedBudget(Budget):
    """A Budget (hard cap per period, per key) kept in Redis at `url` and shared by every replica using the same
    `namespace`. Pacing needs one process's view of the spend, so only pacer="none" is accepted; periods are in
    seconds from `origin` (default Unix time 0, so daily periods are UTC days on every replica)."""

    def __init__(self, url: str, limit: float, namespace: str = "default", period: float | None = None,
                 key_limit: float | None = None, pacer: str = "none", bins: int = 20, origin: float | None = None,
                 timeout: float = 2.0, clock: Callable[[], float] = time.time) -> None:
        import redis

        if pacer != "none":
            raise ConfigError(f"a budget shared through Redis enforces the hard cap only: budget.pacer must be "
                              f"'none', got {pacer!r}")
        origin = 0.0 if origin is None and period is not None else origin
        super().__init__(limit, period=period, pacer="none", bins=bins, key_limit=key_limit, origin=origin,
                         clock=clock)
        self._origin_at = origin or 0.0
        self._redis: Any = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._prefix = f"bandit-router:{namespace}:budget"
        self._reserve = self._redis.register_script(_RESERVE)
        self._close = self._redis.register_script(_CLOSE)

    def _call(self, fn: Callable[[], Any]) -> Any:
        import redis

        try:
            return fn()
        except redis.RedisError as error:
            raise StoreUnavailableError(f"the budget ledger in Redis is unavailable ({type(error).__name__})") from None

    def _period(self) -> int:
        return 0 if self.period is None else int((self.clock() - self._origin_at) // self.period)

    def _account(self, key: str | None) -> str:
        return "" if key is None or self.key_limit is None else f"k:{key}"

    def _read(self, key: str | None) -> tuple[float, float, float]:
        """(spent this period, held, limit) of `key`'s account (the global one when None)."""
        account = self._account(key)
        values = self._call(lambda: self._redis.hmget(f"{self._prefix}:{self._period()}", f"spent:{account}",
                                                      f"held:{account}"))
        spent, held = (int(v or 0) / PICO for v in values)
        return spent, held, self.key_limit if account else self.limit

    # -- the ledger -----------------------------------------------------------------------------------------
    def fits(self, amount: float, key: str | None = None) -> bool:
        accounts = [None] if not self._account(key) else [None, key]
        return all(amount <= limit - spent - held for spent, held, limit in map(self._read, accounts))

    def reserve(self, amount: float, key: str | None = None, expected: float | None = None) -> Reservation:
        """Hold `amount` in the shared ledger (`expected` is kept on the reservation; pacing is per process)."""
        pico = _pico(amount, "amount")
        account = self._account(key)
        period = self._period()
        ttl = 0 if self.period is None else math.ceil(2 * self.period)
        args = [pico, _pico(self.limit, "limit"), account,
                _pico(self.key_limit, "key_limit") if account else 0, period, ttl]
        keys = [f"{self._prefix}:{period}", f"{self._prefix}:holds", f"{self._prefix}:ids"]
        hold, which, left = self._call(lambda: self._reserve(keys=keys, args=args))
        if not hold:
            name = "the budget" if which == b"g" else f"key {key!r}"
            limit = self.limit if which == b"g" else self.key_limit
            raise BudgetExceededError(f"{name} cannot cover a call's worst-case cost of ${amount:.6g}: "
                                      f"${int(left) / PICO:.6g} of ${limit:.6g} left this period (shared ledger)")
        return Reservation(int(hold), amount, key, amount if expected is None else min(expected, amount))

    def _finish(self, reservation: Reservation, cost: int) -> None:
        keys = [f"{self._prefix}:holds", f"{self._prefix}:total"]
        done = self._call(lambda: self._close(keys=keys, args=[reservation.id, cost, self._prefix]))
        if not done:
            raise ConfigError(f"reservation {reservation.id} is not held (already settled or released?)")

    def settle(self, reservation: Reservation, cost: float) -> None:
        self._finish(reservation, _pico(cost, "cost"))

    def release(self, reservation: Reservation) -> None:
        self._finish(reservation, -1)

    # -- reading the ledger ---------------------------------------------------------------------------------
    def spent(self, key: str | None = None) -> float:
        return self._read(key)[0]

    def reserved(self, key: str | None = None) -> float:
        return self._read(key)[1]

    def remaining(self, key: str | None = None) -> float:
        accounts = [None] if not self._account(key) else [None, key]
        return min(limit - spent - held for spent, held, limit in map(self._read, accounts))

    def total_spent(self, key: str | None = None) -> float:
        value = self._call(lambda: self._redis.hget(f"{self._prefix}:total", self._account(key)))
        return int(value or 0) / PICO

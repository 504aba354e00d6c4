"""Budgets: an exact spend ledger with a hard cap, and pacing that shapes routing so the budget lasts.

A `Budget` holds one account for the whole router and, with `key_limit`, one per key (a user, a tenant).
Each account's limit applies per period: a time window in seconds or a number of queries, after which the
account starts afresh. Before a call the router reserves the call's worst-case cost (prompt tokens plus
max_tokens at the model's prices); a model whose worst case does not fit is not eligible. The reservation also
carries the call's expected cost (the router's learned cost model, `bandit_router.costs`), which is what the
pacers count for calls in flight: the hard cap holds the worst case, pacing plans with what calls really cost.
After the call the reservation is settled with the real cost reported by LiteLLM (or released if the call
failed), so the ledger's spend is exactly the sum of the settled costs. `Budget.save`/`restore` carry the
ledger across restarts.

Pacing decides which affordable models a request may use:
- "knapsack" (default): PILOT's online multi-choice knapsack. With z the share of the current bin's budget
  spent or expected by calls in flight, model l is allowed while value_l / cost_l >= Psi(z) = (U e / L)^z (L / e),
  value_l being the policy's predicted quality and cost_l the cost model's predicted cost; L and U bound the
  value/cost ratio (given, or the smallest and largest ratio seen so far). The period is cut into `bins` bins, each with
  budget limit / bins, and what a bin leaves unspent rolls over to the next.
- "split": a fixed per-query split: model l is allowed while its predicted cost <= limit / queries per period.
- "none": the hard cap only.
When the number of queries per period is known, both pacers also keep enough for the queries still to come
at the typical cheapest cost. When no model passes the pacer, the models within this query's even share of
what is left are allowed, else the cheapest (PILOT falls back to the cheapest).
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .atomic import write_atomic
from .checks import check_non_negative, check_positive, json_too_deep
from .errors import BudgetExceededError, ConfigError, StateFormatError

__all__ = ["Budget", "Reservation", "zcl_threshold"]

PACERS = ("knapsack", "split", "none")
UNITS = ("seconds", "queries")


def zcl_threshold(z: float, low: float, high: float) -> float:
    """PILOT's ZCL threshold Psi(z) = (U e / L)^z (L / e) for spent share z in [0, 1] and ratio bounds L <= U."""
    z = min(max(z, 0.0), 1.0)
    return (high * math.e / low) ** z * (low / math.e)


@dataclass(frozen=True)
class Reservation:
    """Money held for one call until it is settled or released."""

    id: int
    amount: float
    key: str | None
    expected: float = 0.0  # the call's expected cost, at most `amount` (what pacing counts while it is in flight)


@dataclass
class _Account:
    """One ledger: a limit per period, spend and reservations, and the pacer's bin bookkeeping."""

    limit: float
    window: int = -1  # index of the current period
    spent: float = 0.0  # settled spend in the current period
    total: float = 0.0  # settled spend over the account's lifetime
    queries: int = 0  # queries in the current period (reserved, or refused for want of budget)
    spent_before_bin: float = 0.0  # spend of the current period before the current bin started
    bin: int = 0
    calls: int = 0  # settled calls over the lifetime
    holds: dict[int, float] = field(default_factory=dict)  # reservation id -> USD held for a call in flight
    expecting: dict[int, float] = field(default_factory=dict)  # reservation id -> the call's expected USD

    @property
    def reserved(self) -> float:
        return math.fsum(self.holds.values())

    @property
    def expected(self) -> float:
        """What the calls in flight are expected to cost (pacing counts this; the hard cap counts `reserved`)."""
        return math.fsum(self.expecting.values())

    def available(self) -> float:
        return self.limit - self.spent - self.reserved


# What `Budget.save` keeps of an account, with each field's type (the limit is the restoring budget's own).
_SAVED = {f.name: {"int": int, "float": float}[f.type] for f in fields(_Account)
          if f.name not in ("limit", "holds", "expecting")}
MAX_DEPTH = 32  # JSON nesting `restore` reads (a ledger nests 3 deep); deeper would make json.loads recurse


def _number(value: object, name: str, integer: bool = False, low: float = 0.0) -> float:
    """`value` as a finite number >= `low` (a JSON integer when `integer`); ValueError naming the field if not."""
    try:
        ok = (isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)
              and math.isfinite(value) and value >= low)
    except OverflowError:  # an integer beyond float range
        ok = False
    if not ok:
        kind = "an integer" if integer else "a finite number"
        raise ValueError(f"{name} must be {kind} >= {low:g}, got {value!r:.40}")
    return value if integer else float(value)


def _read_ledger(data: object) -> tuple[dict[str, dict[str, float]], list[float], list[float], dict[str, object]]:
    """(accounts, seen_ratio, cheapest, period id) of a parsed ledger; ValueError naming the first bad field."""
    keys = ("format", "period", "unit", "origin", "accounts", "seen_ratio", "cheapest")
    if not isinstance(data, dict) or not all(key in data for key in keys):
        raise ValueError(f"a ledger is a JSON object with the fields {', '.join(keys)}")
    if data["format"] != "bandit-router-budget/1":
        raise ValueError(f"format must be 'bandit-router-budget/1', got {data['format']!r:.40}")
    if data["unit"] not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {data['unit']!r:.40}")
    for key, low in (("period", 0.0), ("origin", -math.inf)):
        if data[key] is not None:
            _number(data[key], key, low=low)
    accounts = data["accounts"]
    if not isinstance(accounts, dict) or not isinstance(accounts.get(""), dict):
        raise ValueError('accounts must be an object holding the budget\'s own account ""')
    ledger = {}
    for name, values in accounts.items():
        if not isinstance(values, dict):
            raise ValueError(f"accounts[{name!r}] must be an object")
        ledger[name] = {key: _number(values.get(key), f"accounts[{name!r}].{key}", cast is int,
                                     -1 if key == "window" else 0) for key, cast in _SAVED.items()}
    seen, cheapest = data["seen_ratio"], data["cheapest"]
    if seen is None:
        seen = [math.inf, 0.0]  # none seen yet
    elif not (isinstance(seen, list) and len(seen) == 2
              and 0 < _number(seen[0], "seen_ratio[0]") <= _number(seen[1], "seen_ratio[1]")):
        raise ValueError(f"seen_ratio must be null or [low, high] with 0 < low <= high, got {seen!r:.80}")
    if not (isinstance(cheapest, list) and len(cheapest) == 2):
        raise ValueError(f"cheapest must be [sum, count], got {cheapest!r:.80}")
    cheapest = [_number(cheapest[0], "cheapest[0] (sum)"), _number(cheapest[1], "cheapest[1] (count)", True)]
    return ledger, [float(v) for v in seen], cheapest, {key: data[key] for key in ("period", "unit", "origin")}


class Budget:
    """A spend limit per period with a hard cap and a pacer (see the module docstring).

    Args:
        limit: USD the router may spend per period (over all keys).
        period: length of a period: seconds (unit="seconds") or queries (unit="queries"); None: one period
            for the budget's lifetime.
        unit: "seconds" or "queries".
        pacer: "knapsack" (PILOT's online knapsack), "split" (fixed per-query split) or "none" (hard cap only).
        bins: bins per period of the knapsack pacer; unspent budget rolls over from bin to bin.
        ratio_range: (L, U), bounds of a model's predicted quality / predicted cost (quality per USD);
            None estimates them from the ratios seen so far.
        expected_queries: queries per period for the split pacer when the period is in seconds.
        key_limit: each key's own limit per period (same period and pacer), or None for no per-key accounts.
        origin: when the first period starts, in `clock` seconds (e.g. a midnight's Unix time, so daily
            periods are calendar days and survive restarts); None: now. Only for unit="seconds".
        clock: time source in seconds (for tests).

    `save(path)` writes the ledger to a JSON file and `restore(path)` reads it back into a budget with the same
    period, unit and origin, so a restarted process keeps counting the period's spend.
    """

    def __init__(self, limit: float, period: float | None = None, unit: str = "seconds", pacer: str = "knapsack",
                 bins: int = 20, ratio_range: tuple[float, float] | None = None,
                 expected_queries: int | None = None, key_limit: float | None = None,
                 origin: float | None = None, clock: Callable[[], float] = time.time) -> None:
        self.limit = check_positive(limit, "limit")
        self.key_limit = None if key_limit is None else check_positive(key_limit, "key_limit")
        if unit not in UNITS:
            raise ConfigError(f"unit must be one of {UNITS}, got {unit!r}")
        if period is not None:
            period = check_positive(period, "period")
            if unit == "queries" and not float(period).is_integer():
                raise ConfigError(f"period must be a whole number of queries when unit='queries', got {period!r}")
        if pacer not in PACERS:
            raise ConfigError(f"pacer must be one of {PACERS}, got {pacer!r}")
        if not (isinstance(bins, int) and not isinstance(bins, bool) and bins >= 1):
            raise ConfigError(f"bins must be an integer >= 1, got {bins!r}")
        if ratio_range is not None:
            low, high = (float(v) for v in ratio_range)
            if not (0 < low <= high < math.inf):
                raise ConfigError(f"ratio_range must be (L, U) with 0 < L <= U < inf, got {ratio_range!r}")
            ratio_range = (low, high)
        if expected_queries is not None and not (isinstance(expected_queries, int) and expected_queries >= 1):
            raise ConfigError(f"expected_queries must be an integer >= 1, got {expected_queries!r}")
        if pacer == "split":
            expected_queries = expected_queries or (int(period) if unit == "queries" and period else None)
            if expected_queries is None:
                raise ConfigError("the split pacer needs the queries per period: give period in queries "
                                  "(unit='queries') or expected_queries")
        self.period = period
        self.unit = unit
        self.pacer = pacer
        self.bins = bins
        self.ratio_range = ratio_range
        self.expected_queries = expected_queries
        if origin is not None:
            if unit != "seconds" or period is None:
                raise ConfigError("origin applies to time periods only: give period in seconds (unit='seconds')")
            if isinstance(origin, bool) or not isinstance(origin, (int, float)) or not math.isfinite(origin) \
                    or origin > clock():
                raise ConfigError(f"origin must be a finite time in clock seconds, not in the future, got {origin!r}")
        self.clock = clock
        self._origin = clock() if origin is None else float(origin)
        self._origin_given = origin is not None  # when not, `restore` takes the saved ledger's
        self._seen_ratio: list[float] = [math.inf, 0.0]  # smallest and largest quality/cost ratio seen
        self._cheapest: list[float] = [0.0, 0]  # sum and count of each request's cheapest predicted cost
        self._global = _Account(self.limit)
        self._keys: dict[str, _Account] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    # -- accounts -------------------------------------------------------------------------------------------
    def _accounts(self, key: str | None, arriving: bool = True) -> list[_Account]:
        """The accounts a request under `key` draws on, rolled to the current period and bin (a period of
        queries rolls over only when a query arrives, not when the ledger is read)."""
        accounts = [self._global]
        if key is not None and self.key_limit is not None:
            accounts.append(self._keys.setdefault(key, _Account(self.key_limit)))
        for account in accounts:
            self._roll(account, arriving)
        return accounts

    def _position(self, account: _Account, arriving: bool) -> tuple[int, float]:
        """(period index, position within the period in [0, 1))."""
        if self.period is None:
            return 0, 0.0
        elapsed = self.clock() - self._origin if self.unit == "seconds" else None
        if elapsed is not None:
            return int(elapsed // self.period), (elapsed % self.period) / self.period
        # queries: the period index advances once a full period of queries has arrived (reserved or refused)
        if arriving and account.queries >= self.period:
            return account.window + 1, 0.0
        return max(account.window, 0), account.queries / self.period

    def _roll(self, account: _Account, arriving: bool) -> None:
        window, position = self._position(account, arriving)
        if window != account.window:
            account.window, account.spent, account.queries = window, 0.0, 0
            account.spent_before_bin, account.bin, position = 0.0, 0, 0.0 if self.unit == "queries" else position
        current = min(int(position * self.bins), self.bins - 1)
        if current != account.bin:
            account.bin, account.spent_before_bin = current, account.spent

    def _share_spent(self, account: _Account) -> float:
        """z: share of the current bin's budget (its own plus rollover) already spent or reserved."""
        if self.period is None:
            return (account.spent + account.expected) / account.limit
        allowance = account.limit * (account.bin + 1) / self.bins - account.spent_before_bin
        used = account.spent - account.spent_before_bin + account.expected
        return 1.0 if allowance <= 0 else used / allowance

    # -- pacing ---------------------------------------------------------------------------------------------
    def fits(self, amount: float, key: str | None = None) -> bool:
        """Whether `amount` USD can be reserved now for a request under `key`."""
        with self._lock:
            return all(amount <= a.available() for a in self._accounts(key))

    def threshold(self, key: str | None = None) -> float:
        """The knapsack pacer's current Psi(z) in quality per USD (the strictest of the request's accounts)."""
        with self._lock:
            low, high = self._ratio_bounds()
            return max(zcl_threshold(self._share_spent(a), low, high) for a in self._accounts(key))

    def _ratio_bounds(self) -> tuple[float, float]:
        if self.ratio_range is not None:
            return self.ratio_range
        low, high = self._seen_ratio
        return (low, high) if low <= high else (1.0, 1.0)

    def pace(self, names: Sequence[str], quality: np.ndarray, cost: np.ndarray, key: str | None = None) -> list[str]:
        """The models among `names` the pacer allows, given each one's predicted quality and cost (USD).

        Never empty: when the pacer allows none, those within this query's even share of what is left, else the
        cheapest of `names`, are returned.
        """
        quality, cost = np.asarray(quality, dtype=float), np.asarray(cost, dtype=float)
        if self.pacer == "none":
            return list(names)
        with self._lock:
            self._cheapest = [self._cheapest[0] + cost.min(), self._cheapest[1] + 1]
            keep, share = self._kept_for_the_rest()
        if self.pacer == "split":
            allowed = cost <= self.limit / self.expected_queries
            if key is not None and self.key_limit is not None:
                allowed &= cost <= self.key_limit / self.expected_queries
        else:
            ratio = np.where(cost > 0, np.clip(np.nan_to_num(quality, nan=1.0), 1e-3, None) / np.maximum(cost, 1e-300),
                             np.inf)
            with self._lock:
                finite = ratio[np.isfinite(ratio)]
                if finite.size:
                    self._seen_ratio = [min(self._seen_ratio[0], finite.min()), max(self._seen_ratio[1], finite.max())]
            allowed = ratio >= self.threshold(key)
        allowed &= cost <= keep
        if not allowed.any():
            allowed = cost <= share
        if not allowed.any():
            return [names[int(np.argmin(cost))]]
        return [n for n, ok in zip(names, allowed) if ok]

    def _kept_for_the_rest(self) -> tuple[float, float]:
        """(most a request may cost so that the queries left in the period can still be served at the typical
        cheapest cost, this query's even share of what is left); (inf, 0) when the period's queries are unknown."""
        queries = self.expected_queries or (int(self.period) if self.unit == "queries" and self.period else None)
        if queries is None:
            return math.inf, 0.0
        account = self._accounts(None)[0]
        done = account.queries if self.unit == "queries" else self._position(account, False)[1] * queries
        left = max(queries - done - 1, 0)
        available = account.limit - account.spent - account.expected  # calls in flight at their expected cost
        return available - left * self._cheapest[0] / self._cheapest[1], available / (left + 1)

    # -- the ledger -----------------------------------------------------------------------------------------
    def reserve(self, amount: float, key: str | None = None, expected: float | None = None) -> Reservation:
        """Hold `amount` USD (the call's worst case) for a call under `key`; BudgetExceededError if any of its
        accounts lacks it. `expected` is what the call is expected to cost (default `amount`; capped at it),
        which the pacers count until the call settles."""
        amount = check_non_negative(amount, "amount", "USD")
        expected = amount if expected is None else min(check_non_negative(expected, "expected", "USD"), amount)
        with self._lock:
            accounts = self._accounts(key)
            for account, name in zip(accounts, ("the budget", f"key {key!r}")):
                if amount > account.available():
                    self._refused(accounts)
                    raise BudgetExceededError(
                        f"{name} cannot cover a call's worst-case cost of ${amount:.6g}: "
                        f"${account.available():.6g} of ${account.limit:.6g} left this period")
            reservation = Reservation(next(self._ids), amount, key, expected)
            for account in accounts:
                account.queries += 1
                account.holds[reservation.id] = amount
                account.expecting[reservation.id] = expected
            return reservation

    def enlarge(self, reservation: Reservation, amount: float, expected: float | None = None) -> Reservation:
        """A hold of `amount` (more than `reservation`'s) in its place, for the same call: a fallback to a dearer
        model. Not a new query of the period (a period counted in queries would end early); BudgetExceededError,
        `reservation` kept, if one of its accounts lacks the difference."""
        amount = check_non_negative(amount, "amount", "USD")
        expected = amount if expected is None else min(check_non_negative(expected, "expected", "USD"), amount)
        with self._lock:
            holders = self._holders(reservation)
            for account in holders:
                if amount - account.holds[reservation.id] > account.available():
                    raise BudgetExceededError(f"the budget cannot raise a call's hold to its fallback's worst-case "
                                              f"cost of ${amount:.6g}: ${account.available():.6g} left this period")
            for account in holders:
                account.holds[reservation.id] = amount
                account.expecting[reservation.id] = expected
            return replace(reservation, amount=amount, expected=expected)

    def refuse(self, key: str | None = None) -> None:
        """Count a request under `key` refused for want of budget (see `_refused`)."""
        with self._lock:
            self._refused(self._accounts(key))

    def _refused(self, accounts: list[_Account]) -> None:
        """In a period of queries a refused request is one of the period's queries: else a period whose every
        query is refused would never end."""
        if self.unit == "queries":
            for account in accounts:
                account.queries += 1

    def settle(self, reservation: Reservation, cost: float) -> None:
        """Replace the hold of `reservation` by the call's real cost (USD, as LiteLLM reported it)."""
        cost = check_non_negative(cost, "cost", "USD")
        with self._lock:
            for account in self._holders(reservation):
                del account.holds[reservation.id], account.expecting[reservation.id]
                account.spent += cost
                account.total += cost
                account.calls += 1

    def release(self, reservation: Reservation) -> None:
        """Drop the hold of `reservation` (its call never happened or failed without charge)."""
        with self._lock:
            for account in self._holders(reservation):
                del account.holds[reservation.id], account.expecting[reservation.id]

    def _holders(self, reservation: Reservation) -> list[_Account]:
        accounts = [self._global, self._keys.get(reservation.key)] if reservation.key is not None else [self._global]
        holders = [a for a in accounts if a is not None and reservation.id in a.holds]
        if not holders:
            raise ConfigError(f"reservation {reservation.id} is not held (already settled or released?)")
        return holders

    # -- reading the ledger ---------------------------------------------------------------------------------
    def spent(self, key: str | None = None) -> float:
        """Settled spend of the current period (of `key`'s account when given)."""
        with self._lock:
            return self._accounts(key, arriving=False)[-1].spent

    def remaining(self, key: str | None = None) -> float:
        """What can still be reserved this period under `key` (the tighter of its accounts)."""
        with self._lock:
            return min(a.available() for a in self._accounts(key, arriving=False))

    def total_spent(self, key: str | None = None) -> float:
        """Settled spend over the budget's lifetime (of `key`'s account when given)."""
        with self._lock:
            return self._accounts(key, arriving=False)[-1].total

    def reserved(self, key: str | None = None) -> float:
        """Held for calls in flight (of `key`'s account when given)."""
        with self._lock:
            return self._accounts(key, arriving=False)[-1].reserved


    # -- persistence ----------------------------------------------------------------------------------------
    def _period_id(self) -> dict[str, object]:
        timed = self.unit == "seconds" and self.period is not None
        return {"period": self.period, "unit": self.unit, "origin": self._origin if timed else None}

    def save(self, path: str | Path) -> None:
        """Write the ledger (every account's spend this period and over its lifetime) to a JSON file, atomically.

        Calls in flight are saved as spent at their worst case, so a process that dies before settling them is
        not undercounted when restored. Holds themselves are not saved.
        """
        with self._lock:
            accounts = {"": self._global, **self._keys}
            ledger = {name: {**{key: getattr(a, key) for key in _SAVED},
                             "spent": a.spent + a.reserved, "total": a.total + a.reserved}
                      for name, a in accounts.items()}
            seen = self._seen_ratio if self._seen_ratio[0] <= self._seen_ratio[1] else None  # null: none seen yet
            data = {"format": "bandit-router-budget/1", **self._period_id(), "accounts": ledger,
                    "seen_ratio": seen, "cheapest": self._cheapest}
        write_atomic(path, json.dumps(data, allow_nan=False).encode())  # strict JSON: jq and JSON.parse read it

    def restore(self, path: str | Path) -> None:
        """Read a ledger written by `save` into this budget (which must have the same period and unit, and the
        same origin unless this budget was given none: then it takes the ledger's, so a budget rebuilt with the
        same arguments after a restart goes on counting the saved period); the saved accounts replace this
        budget's. Limits are this budget's, so a limit can change on restart."""
        try:
            text = Path(path).read_text()
            if json_too_deep(text, MAX_DEPTH):
                raise ValueError(f"it nests deeper than {MAX_DEPTH} levels")
            ledger, seen, cheapest, saved = _read_ledger(json.loads(text))  # ValueError: also bad JSON, UTF-8
        except (OSError, ValueError) as error:
            raise StateFormatError(f"{path} is not a valid budget ledger written by Budget.save: {error}") from error
        origin = saved["origin"]
        adopt = (not self._origin_given and self._period_id()["origin"] is not None and origin is not None
                 and origin <= self.clock())
        if saved != {**self._period_id(), **({"origin": origin} if adopt else {})}:
            raise ConfigError(f"the ledger in {path} was kept for {saved}, this budget counts {self._period_id()}; "
                              "give the budget the same period, unit and origin")
        with self._lock:
            if adopt:
                self._origin = float(origin)
            self._global = _Account(self.limit, **ledger.pop(""))
            self._keys = {} if self.key_limit is None else {key: _Account(self.key_limit, **values)
                                                            for key, values in ledger.items()}
            self._seen_ratio, self._cheapest = seen, cheapest

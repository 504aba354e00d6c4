"""A spend target: the dial set from a mean spend per request instead of by hand.

The dial's effect on cost depends on the models, their prices and the prompts, so "spend about $0.0002 a
request" is easier to ask for than a dial value. `SpendTarget(per_request)` is given to the Router as its
`cost_weight`; each request routed without a dial of its own is routed at the target's current dial, and the
chosen model's expected cost (the router's cost model, which learns from the costs calls settle at) moves the
dial: up when the request cost more than the target, down when it cost less, by rate x (cost - target) /
target in log space (dual ascent on the constraint mean cost = target), that error counted at most 30 times
so that one outlying call does not throw the dial to its end. The mean cost settles at the target
whenever some dial in [0, 1] reaches it; a target below what the cheapest model costs holds the dial at 1, and
one above what quality-only routing spends lets it fall toward 0.
"""

from __future__ import annotations

import math
import threading

from .checks import check_non_negative, check_positive

__all__ = ["SpendTarget"]

_FLOOR = 1e-4  # the smallest dial the target goes down to (quality only, in effect); log space needs a floor
_MAX_ERROR = 30.0  # the largest relative error one request counts for


class SpendTarget:
    """A dial that holds the mean expected cost per request near `per_request` (the models' cost unit, e.g. USD).

    `rate` is how far one request moves the dial (in log space, per unit of relative error); `start` is the
    dial before any request. Thread-safe; `requests` and `spent` count what it has recorded.
    """

    def __init__(self, per_request: float, rate: float = 0.02, start: float = 0.1) -> None:
        self.per_request = check_positive(per_request, "per_request")
        self.rate = check_positive(rate, "rate", 1.0)
        self._log_dial = math.log(max(check_positive(start, "start", 1.0), _FLOOR))
        self.requests, self.spent = 0, 0.0
        self._lock = threading.Lock()

    @property
    def dial(self) -> float:
        """The dial the next request is routed at, in [0.0001, 1]."""
        return math.exp(self._log_dial)

    @property
    def mean_spend(self) -> float:
        """Mean expected cost of the requests recorded so far (0 before the first)."""
        return self.spent / self.requests if self.requests else 0.0

    def record(self, cost: float) -> None:
        """Count one request routed at this target's dial and its chosen model's expected cost."""
        cost = check_non_negative(cost, "cost")
        with self._lock:
            self.requests += 1
            self.spent += cost
            step = self.rate * min((cost - self.per_request) / self.per_request, _MAX_ERROR)
            self._log_dial = min(0.0, max(math.log(_FLOOR), self._log_dial + step))

    def __repr__(self) -> str:
        return f"SpendTarget(per_request={self.per_request!r}, rate={self.rate!r}, dial={self.dial:.4g})"

"""The budget gate: which models a request can afford, the pacer's narrowing, and the holds of routed calls."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from .budget import Budget, Reservation
from .costs import CostModel
from .decision import Decision
from .errors import BudgetExceededError, ConfigError, StoreUnavailableError
from .models import Model, check_usd, output_limit
from .outcome import normalised_costs
from .tokens import check_route_id

__all__ = ["BudgetGate"]

log = logging.getLogger(__name__)

Quality = Callable[[list[str], np.ndarray], np.ndarray]  # (models, normalised costs) -> predicted quality


class BudgetGate:
    """Holds each routed call's worst-case cost against `budget` until it is settled or released, and tells the
    cost model `costs` which call each settled cost belongs to (the pacer judges models by its expected costs).

    Without a budget every model passes; settle/release only keep the cost model learning.
    """

    def __init__(self, budget: Budget | None, models: Mapping[str, Model], costs: CostModel,
                 expected_output_tokens: int, lock: threading.RLock) -> None:
        if budget is not None and not isinstance(budget, Budget):
            raise ConfigError(f"budget must be a bandit_router.Budget or None, got {type(budget).__name__}")
        self.budget = budget
        self.models = models
        self.costs = costs
        self.expected_output_tokens = expected_output_tokens
        self.lock = lock
        # route_id -> hold, worst case per model, when it was taken (time.time()); oldest first
        self.held: dict[str, tuple[Reservation, dict[str, float], float]] = {}
        self.owed: dict[str, tuple[Reservation, float]] = {}  # route_id -> hold, charge its budget's store refused

    def output_bound(self, card: Model) -> int:
        """Output tokens per answer the worst case assumes when a call gives no max_tokens: the card's params'
        max_tokens (or max_completion_tokens), which every call to it carries, else the model's output limit, else
        expected_output_tokens (a call to a priced model under a budget is capped at it: see `cap`)."""
        return output_limit(card.params) or card.max_output_tokens or self.expected_output_tokens

    def note_uncapped(self, cards: Iterable[Model]) -> None:
        """Warn, under a budget, of priced models with no output limit: calls to them that give no max_tokens are
        capped at expected_output_tokens (`cap`), which may cut answers short."""
        names = [c.name for c in cards if c.output_cost_per_token > 0 and not c.max_output_tokens
                 and output_limit(c.params) is None]
        if self.budget is not None and names:
            log.warning("under a budget, calls to %s that give no max_tokens are capped at %d output tokens "
                        "(Limits.expected_output_tokens), so that their hold bounds them: set max_output_tokens on "
                        "their cards to allow longer answers", names, self.expected_output_tokens)

    def worst_case_cost(self, model: str, prompt_tokens: int, max_tokens: int | None, choices: int = 1) -> float:
        """USD a call can cost at most: the prompt plus `choices` answers of max_tokens (else `output_bound`) at the
        model's prices."""
        card = self.models[model]
        return card.cost(prompt_tokens, choices * (max_tokens or self.output_bound(card)))

    def cap(self, card: Model, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The max_tokens a call must carry so that its hold bounds it: under a budget, for a priced model, when
        neither the call nor the card's params set max_tokens / max_completion_tokens, `output_bound`; else none."""
        if self.budget is None or card.output_cost_per_token <= 0 or output_limit({**card.params, **kwargs}):
            return {}
        return {"max_tokens": self.output_bound(card)}

    def admit(self, names: list[str], prompt_tokens: int, max_tokens: int | None, choices: int, key: str | None,
              quality: Quality) -> tuple[list[str], dict[str, float]]:
        """(models the request may use, worst-case cost of each affordable one): those whose worst case fits the
        budget, narrowed by the pacer judging `quality(models, normalised costs)` per predicted USD (of the
        `choices` answers)."""
        if self.budget is None:
            return names, {}
        worst = {m: self.worst_case_cost(m, prompt_tokens, max_tokens, choices) for m in names}
        fits = {m: c for m, c in worst.items() if self.budget.fits(c, key)}
        if not fits:
            self.budget.refuse(key)
            left, cheapest = self.budget.remaining(key), min(worst.values())
            short = key if key is not None and left < self.budget.remaining() else None  # the account that binds
            held = self.budget.reserved(short)
            wait = (f"calls in flight hold ${held:.6g}, which comes back as they end less their real cost (a replica "
                    f"that stopped mid-call keeps its share to the period's end): give a smaller max_tokens or retry "
                    f"then" if held > 0 and left + held >= cheapest else
                    "give a smaller max_tokens or wait for the next period")
            raise BudgetExceededError(
                f"budget exhausted: ${left:.6g} left{'' if key is None else f' for key {key!r}'}, and the cheapest "
                f"eligible model's worst-case cost is ${cheapest:.6g} ({wait})")
        names = list(fits)
        if self.budget.pacer == "none":
            return names, fits
        cost = self.costs.predict(names, prompt_tokens, max_tokens, choices)
        return self.budget.pace(names, quality(names, normalised_costs(cost)), cost, key), fits

    def hold(self, decision: Decision, worst: Mapping[str, float], key: str | None, prompt_tokens: int,
             choices: int) -> None:
        """Reserve the chosen model's worst case for `decision` (pacing counts its expected cost), remembering
        every eligible model's; the cost model waits for the cost of the call's `choices` answers."""
        with self.lock:
            self.costs.routed(decision.route_id, decision.model, prompt_tokens, choices)
        if self.budget is None:
            return
        hold = self.budget.reserve(worst[decision.model], key, expected=decision.predicted_cost[decision.model])
        with self.lock:
            self.held[decision.route_id] = (hold, {m: worst[m] for m in decision.probabilities}, time.time())

    def cover(self, decision: Decision, model: str) -> bool:
        """Whether the hold of `decision` covers a call of `model` (always, without a budget): its worst case fits
        the hold, or the budget has room to hold it instead (a fallback to a dearer model)."""
        with self.lock:
            held = self.held.get(decision.route_id)
        if held is None or held[1][model] <= held[0].amount:
            return True
        hold, worst, taken = held
        try:
            bigger = self.budget.enlarge(hold, worst[model],  # type: ignore[union-attr]
                                         expected=decision.predicted_cost[model])
        except BudgetExceededError:
            return False
        with self.lock:
            self.held[decision.route_id] = (bigger, worst, taken)
        return True

    def expire(self, ttl: float) -> None:
        """Retry the charges a shared budget's store refused (`owed`), then charge at its worst case every hold
        older than `ttl` seconds that nobody settled or released (a route whose caller never reported): assume the
        call was made."""
        for route_id, (hold, amount) in list(self.owed.items()):
            try:
                self.budget.settle(hold, amount)  # type: ignore[union-attr]
            except StoreUnavailableError:
                break
            except ConfigError:  # not held: the refused attempt had reached the store after all
                pass
            with self.lock:
                del self.owed[route_id]
        deadline = time.time() - ttl
        with self.lock:
            old = []
            for route_id, (_, _, taken) in self.held.items():
                if taken > deadline:
                    break
                old.append(route_id)
        for route_id in old:
            self.settle(route_id)

    def settle(self, route_id: str, cost: float | None = None) -> bool:
        """Charge the real cost (USD) in place of the hold and teach it to the cost model; None charges the hold
        itself (the worst case) and teaches nothing. A refused route id or cost raises before the hold is dropped.
        False if the call was not waiting to be settled (already settled or released, expired, or unknown)."""
        opened, charged = self._settle(route_id, cost)
        return opened or charged is not None

    def charge(self, route_id: str) -> float | None:
        """`settle(route_id)`: the hold charged at its worst case (a call whose usage never arrives); what was
        charged (None without a budget, or when nothing was held)."""
        return self._settle(route_id, None)[1]

    def _settle(self, route_id: str, cost: float | None) -> tuple[bool, float | None]:
        """(whether the cost model waited for the call, what the budget was charged: None when nothing was held)."""
        check_route_id(route_id)
        if cost is not None:
            cost = check_usd(cost, "cost")
        with self.lock:
            held = self.held.pop(route_id, None)
            opened = self.costs.settle(route_id, cost)
        if held is None:
            return opened, None
        charged = held[0].amount if cost is None else cost
        try:
            self.budget.settle(held[0], charged)  # type: ignore[union-attr]
        except StoreUnavailableError as error:  # the call was made: its charge waits for the store (`expire`)
            with self.lock:
                self.owed[route_id] = (held[0], charged)
            log.error("the budget's store refused the charge of %s ($%.6g), kept until it answers: %s",
                      route_id, charged, error)
        except ConfigError as error:  # a shared ledger that lost the hold (its store lost its data): the call stands
            log.error("the budget no longer holds %s, so its $%.6g is not recorded: %s", route_id, charged, error)
        return opened, charged

    def release(self, route_id: str) -> bool:
        """Drop the hold of `route_id` without charge (its call was not made); False, as `settle`, if nothing
        waited."""
        check_route_id(route_id)
        with self.lock:
            held = self.held.pop(route_id, None)
            opened = self.costs.forget(route_id)
        if held is not None:
            self.budget.release(held[0])  # type: ignore[union-attr]
        return held is not None or opened

"""The model caller: calls the chosen model through LiteLLM, falling back to the next-best one on provider errors."""

from __future__ import annotations

import logging
import math
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from .costs import CostModel, call_cost
from .decision import Completion, Decision, Messages, query_text, usage_of
from .errors import AllModelsFailedError, StoreUnavailableError
from .gate import BudgetGate
from .ledger import OutcomeLedger
from .models import Model, credential_texts, output_limit, quiet_litellm
from .redaction import hidden, hide, redact
from .store import DecisionLog
from .streaming import AsyncRoutedStream, RoutedStream

__all__ = ["Cooldowns", "ModelCaller", "beyond_model", "retryable", "route_kwargs"]

log = logging.getLogger(__name__)


def route_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """What `route` takes from a call's kwargs (task and budget_key are removed: providers do not take them)."""
    return {"tools": kwargs.get("tools") or False, "max_tokens": output_limit(kwargs),
            "choices": 1 if kwargs.get("n") is None else kwargs["n"],
            "budget_key": kwargs.pop("budget_key", None), "task": kwargs.pop("task", None)}


def retryable(error: BaseException) -> bool:
    """Provider failures worth trying another model for: timeouts, 5xx, rate limits, a 404 (that model's endpoint
    or deployment is missing), a 401 or 403 (that provider refused its key), and requests this model cannot take
    (`beyond_model`): another model may be fine. A request the provider finds invalid otherwise (400) is not."""
    import litellm

    kinds = (litellm.Timeout, litellm.APIConnectionError, litellm.InternalServerError,
             litellm.ServiceUnavailableError, litellm.RateLimitError, litellm.BadGatewayError,
             litellm.NotFoundError, litellm.AuthenticationError, litellm.PermissionDeniedError)
    status = getattr(error, "status_code", 0) or 0
    return isinstance(error, kinds) or status >= 500 or status in (401, 403) or beyond_model(error)


def beyond_model(error: BaseException) -> bool:
    """A request this model cannot take that another may: a prompt over its context window, or a parameter it
    does not support (an o-series model given temperature; LiteLLM's UnsupportedParamsError, or the provider's 400
    with code unsupported_parameter / unsupported_value). Not the model's failure: no cooldown."""
    import litellm

    return (isinstance(error, (litellm.ContextWindowExceededError, litellm.UnsupportedParamsError))
            or getattr(error, "code", None) in ("unsupported_parameter", "unsupported_value"))


def retry_after(error: BaseException) -> float | None:
    """The seconds a provider's Retry-After header (with a 429 or a 503) asks to wait, at most an hour; None
    without one, or for an HTTP date."""
    headers = getattr(error, "litellm_response_headers", None)
    try:
        seconds = float(headers.get("retry-after")) if headers else math.nan
    except (TypeError, ValueError):
        return None
    return min(seconds, 3600.0) if seconds > 0 else None


class Cooldowns:
    """Models whose calls failed `after` times in a row sit out `seconds` (Limits.cooldown), and a model whose
    provider said when to retry (Retry-After) sits out until then; a success ends a model's streak. `seconds` 0
    turns both off. Callers hold the router's lock."""

    def __init__(self, seconds: float, after: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.after = after
        self.clock = clock
        self.streaks: dict[str, int] = {}
        self.until: dict[str, float] = {}

    def failed(self, model: str, rest: float | None = None) -> None:
        """Count a failed call; at `after` in a row the model sits out `seconds` from now, and at once for `rest`
        seconds when its provider asked so (logged once as it starts sitting out, not at each failure of the calls
        already under way)."""
        self.streaks[model] = streak = self.streaks.get(model, 0) + 1
        if not self.seconds or (streak < self.after and rest is None):
            return
        now = self.clock()
        seconds = max(self.seconds if streak >= self.after else 0.0, rest or 0.0)
        if self.until.get(model, 0.0) <= now:
            why = f"failed {streak} times in a row" if rest is None else f"was told to retry after {rest:g} s"
            log.warning("%s %s: not routed to for %g s", model, why, seconds)
        self.until[model] = max(self.until.get(model, 0.0), now + seconds)

    def reset(self, model: str) -> None:
        """End `model`'s streak and any cooldown (it served, or its card was replaced)."""
        self.streaks.pop(model, None)
        self.until.pop(model, None)

    def available(self, names: list[str]) -> list[str]:
        """`names` without the models sitting out, or all of them if none would be left."""
        now = self.clock()
        ready = [m for m in names if self.until.get(m, 0.0) <= now]
        return ready or names

    def resting(self) -> list[str]:
        """The models sitting out a cooldown now."""
        now = self.clock()
        return [m for m, until in self.until.items() if until > now]


class ModelCaller:
    """Calls routed models (plain, async or streamed), tries the next-best model on a retryable failure, settles
    the budget with the real cost and records calls and failures in the log. `failures` counts provider
    failures per model (every failed attempt, retryable or not)."""

    def __init__(self, models: Mapping[str, Model], ledger: OutcomeLedger, gate: BudgetGate, costs: CostModel,
                 log: DecisionLog | None, store_prompts: bool, max_attempts: int, lock: threading.RLock,
                 cooldowns: Cooldowns) -> None:
        self.models = models
        self.ledger = ledger
        self.gate = gate
        self.costs = costs
        self.log = log
        self.store_prompts = store_prompts
        self.max_attempts = max_attempts
        self.lock = lock
        self.cooldowns = cooldowns
        self.failures: dict[str, int] = {name: 0 for name in models}
        self.retired: dict[str, Model] = {}  # cards of removed models, for the calls in flight when they went

    def added(self, name: str) -> None:
        """A model joined the router (`models` holds its card)."""
        with self.lock:
            self.failures[name] = 0
            self.retired.pop(name, None)
            self.cooldowns.reset(name)  # a model added again starts afresh

    def removed(self, card: Model) -> None:
        """A model left the router: no call starts on it any more; calls already under way end on its card."""
        with self.lock:
            del self.failures[card.name]
            self.retired[card.name] = card

    def card(self, model: str) -> Model:
        """The card of `model`, also of one removed while its call was under way."""
        with self.lock:
            return self.models.get(model) or self.retired[model]

    def order(self, decision: Decision) -> Iterator[str]:
        """Models to try for `decision`, best first, at most max_attempts: those still in the router whose worst case
        its budget hold covers, or can be raised to cover."""
        attempts = 0
        for model in decision.ranking():
            if attempts == self.max_attempts:
                return
            if model in self.models and self.gate.cover(decision, model):
                attempts += 1
                yield model

    def hidden(self, messages: Messages) -> AbstractContextManager[None]:
        """Keep the prompt, and the arguments of earlier tool calls in it, out of log records (LiteLLM logs
        requests at DEBUG) unless store_prompts is on."""
        if self.store_prompts:
            return nullcontext()
        arguments = [call["function"]["arguments"] for message in messages for call in message.get("tool_calls") or ()
                     if isinstance(call, Mapping) and isinstance(call.get("function"), Mapping)
                     and isinstance(call["function"].get("arguments"), str)]
        return hidden(query_text(messages)[1].split("\n") + arguments)

    def call_kwargs(self, card: Model, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """LiteLLM's arguments for calling `model` with the call's `kwargs`: no retries of the same model unless
        the card's params or the call ask for them (a failing model is replaced by the next-best one instead), and
        under a budget the max_tokens its hold assumed when none is given (`BudgetGate.cap`).
        Credentials among the call's kwargs (an Authorization in extra_headers) are redacted from logs, as keys."""
        if secrets := credential_texts(kwargs):
            hide(secrets)
        return {"max_retries": 0, **card.call_kwargs(), **kwargs, **self.gate.cap(card, kwargs)}

    def served(self, decision: Decision, model: str, failed: list[str]) -> Decision:
        """The decision as served: after fallbacks the pending feedback is re-pointed at the model that answered."""
        with self.lock:
            self.cooldowns.reset(model)
        if model == decision.model:
            return decision
        self.ledger.serve(decision.route_id, model)
        with self.lock:
            self.costs.served(decision.route_id, model)
        served = replace(decision, model=model, propensity=decision.probabilities[model], failed=tuple(failed))
        self.logged(lambda decisions: decisions.record_decision(served))
        return served

    def logged(self, write: Callable[[DecisionLog], None]) -> None:
        """Write what already happened (a call made, a rating applied) to the log: a log that cannot take it (a full
        disk, its store down) is logged as an error, and what happened stands (a served answer is returned; failing
        it would have its caller pay for the call again)."""
        if self.log is None:
            return
        try:
            write(self.log)
        except StoreUnavailableError as error:
            log.error("the decision log could not record an outcome, which stands: %s", error)

    def record(self, decision: Decision, prompt: str | None, vector: np.ndarray | None) -> None:
        """Log a new decision; if the log refuses it (e.g. a full disk), withdraw the decision and re-raise."""
        if self.log is None:
            return
        try:
            self.log.record_decision(decision, prompt=prompt, vector=vector)
        except BaseException:  # no pending decision or budget hold outlives the refusal
            self.withdraw(decision.route_id)
            raise

    def withdraw(self, route_id: str) -> None:
        """Close a decision whose call cannot be made (nothing is learned) and release its hold."""
        self.ledger.fail(route_id)
        self.gate.release(route_id)

    def failed(self, decision: Decision, model: str, error: BaseException, failures: dict[str, BaseException]) -> None:
        """Count and log a failed attempt; a failure not worth trying another model for ends the call: it is
        re-raised, with a note naming the model and the attempts that failed before it."""
        worth_retrying = retryable(error)
        self._count(decision, model, error, models_fault=worth_retrying and not beyond_model(error))
        if not worth_retrying:
            self.withdraw(decision.route_id)
            before = "".join(f"; {m} had failed first: {type(e).__name__}: {redact(str(e))[:200]}"
                             for m, e in failures.items())
            error.add_note(f"bandit-router: the request was routed to {model}{before}")
            raise error
        failures[model] = error

    def all_failed(self, decision: Decision, failures: dict[str, BaseException]) -> AllModelsFailedError:
        self.withdraw(decision.route_id)
        detail = "; ".join(f"{m}: {type(e).__name__}: {redact(str(e))[:300]}" for m, e in failures.items())
        untried = [m for m in decision.probabilities if m not in failures]
        more = (f" (not tried: {untried}: beyond Limits.max_attempts={self.max_attempts}, more than the budget could "
                "hold, or removed from the router)") if untried else ""
        if decision.unaffordable:
            more += f" (left out by the budget when routed: {list(decision.unaffordable)})"
        with self.lock:
            resting = [m for m in self.cooldowns.resting() if m not in decision.probabilities]
        if resting:
            more += f" (sitting out a cooldown after failing in a row, not routed to: {resting})"
        return AllModelsFailedError(f"no model could serve the request after {len(failures)} attempt(s): "
                                    f"{detail}{more}", failures)

    def ended(self, decision: Decision, card: Model, usage: Mapping[str, int], response: Any = None) -> float:
        """Settle and log a finished call; its cost: LiteLLM's response cost when `response` reports one, else the
        card's prices x the usage."""
        cost = call_cost(response, card, usage)
        self.gate.settle(decision.route_id, cost)
        self.logged(lambda decisions: decisions.record_call(decision.route_id, cost, usage["prompt_tokens"],
                                                            usage["completion_tokens"]))
        return cost

    def broke(self, decision: Decision, model: str, error: BaseException) -> None:
        """Count and log a stream that broke after its first chunk (too late to try another model)."""
        self._count(decision, model, error, models_fault=True)

    def _count(self, decision: Decision, model: str, error: BaseException, models_fault: bool) -> None:
        """Count a failed call of `model` (towards its cooldown if it is the model's fault, not the request's) and
        log it."""
        with self.lock:
            if model in self.failures:  # not for a model removed while its call was under way
                self.failures[model] += 1
            if models_fault:
                self.cooldowns.failed(model, retry_after(error))
        self.logged(lambda decisions: decisions.record_failure(decision.route_id, error))

    def cut(self, decision: Decision) -> float | None:
        """A stream stopped before its end: its usage never arrives, so the hold is charged at its worst case
        (returned); the log records it as served at that charge, marked as cut (its answer can be rated)."""
        charged = self.gate.charge(decision.route_id)
        self.logged(lambda decisions: decisions.record_cut(decision.route_id, charged))
        return charged

    def abandoned(self, decision: Decision) -> float | None:
        """A call stopped before any answer (cancelled, interrupted): the provider may bill the request, so the
        hold is charged at its worst case (returned), and with nothing to rate the decision stops waiting."""
        charged = self.gate.charge(decision.route_id)
        self.ledger.fail(decision.route_id, "cancelled")
        return charged

    def unused(self, decision: Decision) -> None:
        """A stream closed before it was read: nothing was requested, so nothing is billed: the hold is released,
        and with nothing to rate the decision stops waiting."""
        self.gate.release(decision.route_id)
        self.ledger.fail(decision.route_id, "unread")

    def _finish(self, decision: Decision, card: Model, response: Any) -> Completion:
        usage = usage_of(response)
        return Completion(response=response, decision=decision, cost=self.ended(decision, card, usage, response),
                          usage=usage)

    def complete(self, messages: list[dict[str, Any]], decision: Decision, kwargs: Mapping[str, Any]) -> Completion:
        litellm = quiet_litellm()

        failures: dict[str, BaseException] = {}
        with self.hidden(messages):  # also while failures are noted and raised: a provider may repeat the prompt
            for model in self.order(decision):
                card = self.card(model)  # the card the call is made, and charged, with
                try:
                    response = litellm.completion(messages=messages, **self.call_kwargs(card, kwargs))
                except Exception as error:
                    self.failed(decision, model, error, failures)
                    continue
                except BaseException:  # cancelled (asyncio), interrupted
                    self.abandoned(decision)
                    raise
                return self._finish(self.served(decision, model, list(failures)), card, response)
            raise self.all_failed(decision, failures)

    async def acomplete(self, messages: list[dict[str, Any]], decision: Decision,
                        kwargs: Mapping[str, Any]) -> Completion:
        litellm = quiet_litellm()

        failures: dict[str, BaseException] = {}
        with self.hidden(messages):  # also while failures are noted and raised: a provider may repeat the prompt
            for model in self.order(decision):
                card = self.card(model)  # the card the call is made, and charged, with
                try:
                    response = await litellm.acompletion(messages=messages, **self.call_kwargs(card, kwargs))
                except Exception as error:
                    self.failed(decision, model, error, failures)
                    continue
                except BaseException:  # cancelled (asyncio), interrupted
                    self.abandoned(decision)
                    raise
                return self._finish(self.served(decision, model, list(failures)), card, response)
            raise self.all_failed(decision, failures)

    def stream(self, messages: list[dict[str, Any]], decision: Decision, kwargs: Mapping[str, Any]) -> RoutedStream:
        return RoutedStream(self, messages, decision, self.order(decision), kwargs)

    def astream(self, messages: list[dict[str, Any]], decision: Decision,
                kwargs: Mapping[str, Any]) -> AsyncRoutedStream:
        return AsyncRoutedStream(self, messages, decision, self.order(decision), kwargs)

"""The Router: the one place that ties models, encoder, policy, decision log and LiteLLM together."""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections import OrderedDict
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .budget import Budget, Reservation
from .costs import CostModel, call_cost
from .decision import Completion, Decision, Messages, messages_of, query_text, usage_of
from .encoders import Encoder, as_encoder
from .errors import (AllModelsFailedError, BudgetExceededError, ConfigError, DuplicateFeedbackError,
                     InvalidPromptError, NoEligibleModelError, UnknownRouteError)
from .models import Model, estimate_tokens
from .policies import Policy, make_policy
from .policies.ridge import RidgePolicy
from .quota import SourceQuota
from .redaction import hidden, hide
from .store import DecisionLog, Replica, StateStore
from .streaming import AsyncRoutedStream, RoutedStream
from .tasks import TEXT_WEIGHT, TaskHints
from .tokens import FeedbackTokens

__all__ = ["Router", "check_cost_weight", "check_score", "check_prompt"]


def check_cost_weight(value: Any, field: str = "cost_weight") -> float:
    """The dial as a float in [0, 1], or ConfigError naming `field`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{field} must be a number in [0, 1] (0 = quality only), got {value!r}")
    return float(value)


def check_score(value: Any) -> float:
    """A feedback score as a float in [0, 1], or ConfigError."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ConfigError(f"score must be a number in [0, 1], got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"score must be a finite number in [0, 1], got {value!r}")
    return float(value)


def check_prompt(prompt: Any, max_chars: int) -> tuple[str, str]:
    """(text to encode, full text) of a prompt string or chat messages, or InvalidPromptError if the prompt is
    not text, is not valid UTF-8 (e.g. lone surrogates from undecodable bytes) or exceeds `max_chars`."""
    query, full_text = query_text(messages_of(prompt))
    if len(full_text) > max_chars:
        raise InvalidPromptError(f"prompt has {len(full_text)} characters; max_prompt_chars allows at most {max_chars}")
    try:
        full_text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidPromptError(f"prompt is not valid UTF-8 text (character {error.start} cannot be encoded)") from None
    return query, full_text


def _retryable(error: BaseException) -> bool:
    """Provider failures worth trying another model for: timeouts, 5xx, rate limits, context too long."""
    import litellm

    retryable = (litellm.Timeout, litellm.APIConnectionError, litellm.InternalServerError,
                 litellm.ServiceUnavailableError, litellm.RateLimitError, litellm.ContextWindowExceededError,
                 litellm.BadGatewayError)
    return isinstance(error, retryable) or (getattr(error, "status_code", 0) or 0) >= 500


@dataclass
class _Pending:
    vector: np.ndarray
    model: str
    created_at: float
    decision: Decision


class Router:
    """Routes each request to one of `models`, calls it through LiteLLM and learns from feedback.

    Args:
        models: model cards, or LiteLLM names whose prices LiteLLM's cost map knows.
        policy: a registered policy name (see `bandit_router.policies.policy_names()`) or a Policy instance.
        policy_settings: settings of the named policy (e.g. {"alpha": 0.5} for linucb).
        encoder: prompt encoder: None for all-MiniLM-L6-v2, an Encoder, or any callable text -> vector.
        cost_weight: default dial in [0, 1]; 0 routes on quality only.
        seed: seed of every random choice the router and its policy make.
        log: decision log: a SQLite file path or a DecisionLog; None keeps no log.
        store_prompts: also store prompt text in the log (off by default).
        store_vectors: also store prompt vectors in the log (needed for off-policy evaluation).
        pending_ttl: seconds a decision waits for feedback.
        max_pending: most decisions waiting for feedback; beyond it the oldest expires.
        expired_reward: reward applied when a decision expires unrated (None: expiry teaches nothing).
        expected_output_tokens: output length used to predict a call's cost when max_tokens is not given.
        max_attempts: models tried per call when providers fail (timeouts, 5xx, rate limits, context length).
        budget: a spend Budget: routes reserve each call's worst-case cost, calls settle their real cost, and the
            budget's pacer narrows the models a request may use (see `bandit_router.budget`).
        state_store: share learned state with other replicas through a SQLiteStateStore (one machine) or a
            RedisStateStore (many); linear policies only (see `bandit_router.store`).
        sync_every: seconds between syncs with `state_store` (checked on route and feedback; `sync()` forces one).
        feedback_secret: sign each decision's `feedback_token` with this secret (>= 16 bytes); feedback must then
            bring the token (see `bandit_router.tokens`).
        feedback_token_ttl: seconds a feedback token stays valid (default: pending_ttl).
        source_limit: most feedback counted per source in any `source_window` seconds; feedback must then name
            its `source` (see `bandit_router.quota`).
        max_prompt_chars: longest prompt accepted, in characters; longer ones raise InvalidPromptError.
        tasks: names of the kinds of request the application sends (e.g. its agent steps or endpoints); a request
            naming one (`task=`) is routed on the prompt and the task (see `bandit_router.tasks`).
        text_weight: with `tasks`, the prompt vector's scale beside the task's one-hot, in (0, 10].
    """

    def __init__(self, models: Sequence[Model | str], policy: str | Policy = "linucb",
                 policy_settings: Mapping[str, Any] | None = None, encoder: Encoder | Callable | None = None,
                 cost_weight: float = 0.0, seed: int | None = None, log: str | Path | DecisionLog | None = None,
                 store_prompts: bool = False, store_vectors: bool = False, pending_ttl: float = 86_400.0,
                 max_pending: int = 100_000, expired_reward: float | None = None,
                 expected_output_tokens: int = 256, max_attempts: int = 3, budget: Budget | None = None,
                 state_store: StateStore | None = None, sync_every: float = 5.0,
                 feedback_secret: str | bytes | None = None, feedback_token_ttl: float | None = None,
                 source_limit: int | None = None, source_window: float = 3600.0,
                 max_prompt_chars: int = 4_000_000, tasks: Sequence[str] = (),
                 text_weight: float = TEXT_WEIGHT) -> None:
        cards = [m if isinstance(m, Model) else Model(m) for m in models]
        if not cards:
            raise ConfigError("models must name at least one model")
        names = [m.name for m in cards]
        if len(set(names)) != len(names):
            raise ConfigError(f"models must have distinct names, got {names}")
        self.models: dict[str, Model] = {m.name: m for m in cards}
        self.cost_weight = check_cost_weight(cost_weight)
        if not pending_ttl > 0:
            raise ConfigError(f"pending_ttl must be > 0 seconds, got {pending_ttl!r}")
        if not (isinstance(max_pending, int) and max_pending >= 1):
            raise ConfigError(f"max_pending must be an integer >= 1, got {max_pending!r}")
        if expired_reward is not None:
            expired_reward = check_score(expired_reward)
        if not (isinstance(expected_output_tokens, int) and expected_output_tokens >= 1):
            raise ConfigError(f"expected_output_tokens must be an integer >= 1, got {expected_output_tokens!r}")
        if not (isinstance(max_attempts, int) and max_attempts >= 1):
            raise ConfigError(f"max_attempts must be an integer >= 1, got {max_attempts!r}")
        self.pending_ttl = float(pending_ttl)
        self.max_pending = max_pending
        self.expired_reward = expired_reward
        self.expected_output_tokens = expected_output_tokens
        self.costs = CostModel(cards, expected_output_tokens)
        self.max_attempts = max_attempts
        self.store_prompts = store_prompts
        self.store_vectors = store_vectors
        self.seed = seed
        self.encoder = as_encoder(encoder)
        self.hints = TaskHints(tasks, text_weight) if tasks else None
        if isinstance(policy, Policy):
            if policy_settings:
                raise ConfigError("policy_settings apply to a policy given by name, not to a Policy instance")
            if list(policy.arms) != names:
                raise ConfigError(f"policy arms {policy.arms} differ from the router's models {names}")
            self.policy = policy
        else:
            self.policy = make_policy(policy, self.dim, names, seed=seed, **(policy_settings or {}))
        self.rng = np.random.default_rng(None if seed is None else [seed, 1])
        self.log = DecisionLog(log) if isinstance(log, (str, Path)) else log
        self.failures: dict[str, int] = {name: 0 for name in names}
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._closed: OrderedDict[str, str] = OrderedDict()  # route_id -> why it stopped waiting
        self._lock = threading.RLock()
        if budget is not None and not isinstance(budget, Budget):
            raise ConfigError(f"budget must be a bandit_router.Budget or None, got {type(budget).__name__}")
        self.budget = budget
        self._held: dict[str, tuple[Reservation, dict[str, float]]] = {}  # route_id -> hold, worst case per model
        hide(m.api_key for m in cards if m.api_key)
        if isinstance(max_prompt_chars, bool) or not isinstance(max_prompt_chars, int) or max_prompt_chars < 1:
            raise ConfigError(f"max_prompt_chars must be an integer >= 1, got {max_prompt_chars!r}")
        self.max_prompt_chars = max_prompt_chars
        self.tokens = None if feedback_secret is None else FeedbackTokens(
            feedback_secret, self.pending_ttl if feedback_token_ttl is None else feedback_token_ttl)
        self.quota = None if source_limit is None else SourceQuota(source_limit, source_window)
        self.replica: Replica | None = None
        if state_store is not None:
            if not isinstance(self.policy, RidgePolicy):
                raise ConfigError(f"state_store needs a linear policy (linucb, thompson, epsilon-greedy), "
                                  f"got {self.policy.name!r}")
            if not (isinstance(sync_every, (int, float)) and sync_every >= 0):
                raise ConfigError(f"sync_every must be a number of seconds >= 0, got {sync_every!r}")
            self.replica = Replica(state_store, self.policy, float(sync_every), self.layout)
            self.replica.maybe_sync(self._lock)

    # -- what the policy sees -------------------------------------------------------------------------------
    @property
    def tasks(self) -> tuple[str, ...]:
        """The declared task names (empty: requests are routed on the prompt alone)."""
        return () if self.hints is None else self.hints.tasks

    @property
    def layout(self) -> str:
        """How this router builds the policy's vectors (encoder, dimension, tasks, text weight), as JSON: replicas
        sharing a state_store must agree on it."""
        return json.dumps({"encoder": self.encoder.name, "dim": self.dim, "tasks": list(self.tasks),
                           "text_weight": self.hints.text_weight if self.hints else None})

    @property
    def dim(self) -> int:
        """Length of the vectors the policy sees: the encoder's, plus one per declared task."""
        return self.encoder.dim + len(self.tasks)

    def vectors(self, prompts: Sequence[str], tasks: Sequence[str | None] | None = None) -> np.ndarray:
        """The vectors the policy sees for prompt texts `prompts` and their tasks (None: none), shape (n, dim)."""
        if tasks is not None and len(tasks) != len(prompts):
            raise ConfigError(f"tasks must give one task (or None) per prompt: {len(tasks)} for {len(prompts)}")
        one_hot = self._one_hot([None] * len(prompts) if tasks is None else list(tasks))
        vectors = self.encoder.encode(list(prompts))
        return vectors if one_hot is None else self.hints.context(vectors, one_hot)  # type: ignore[union-attr]

    def _vector(self, query: str, task: str | None) -> np.ndarray:
        one_hot = self._one_hot([task])
        vector = self.encoder(query)
        return vector if one_hot is None else self.hints.context(vector[None], one_hot)[0]  # type: ignore[union-attr]

    def _one_hot(self, tasks: Sequence[Any]) -> np.ndarray | None:
        """The tasks' one-hots (None when the router declares no tasks), checked before any prompt is encoded."""
        if self.hints is not None:
            return self.hints.one_hot(tasks)
        for task in tasks:
            self.check_task(task)
        return None

    def check_task(self, task: Any) -> None:
        """ConfigError unless `task` is None or one of the router's tasks."""
        if self.hints is not None:
            self.hints.check(task)
        elif task is not None:
            raise ConfigError(f"task {task!r} was given, but the router declares no tasks: pass tasks=[...] to Router")

    # -- models ---------------------------------------------------------------------------------------------
    def add_model(self, model: Model | str, features: np.ndarray | None = None) -> None:
        """Make a new model eligible from the next request on.

        `features` (see `bandit_router.policies.shared.model_features`) let a policy that shares what it learns
        across models (shared-linucb) predict the new model's quality before any feedback; None adds it bare.
        """
        card = model if isinstance(model, Model) else Model(model)
        with self._lock:
            if card.name in self.models:
                raise ConfigError(f"model {card.name!r} is already in the router")
            if features is None:
                self.policy.add_arm(card.name)
            elif getattr(self.policy, "uses_features", False):
                self.policy.add_arm(card.name, features=features)
            else:
                raise ConfigError(f"policy {self.policy.name!r} does not use model features; use shared-linucb")
            self.models[card.name] = card
            self.costs.add(card)
            self.failures[card.name] = 0
        if card.api_key:
            hide([card.api_key])

    def remove_model(self, name: str) -> None:
        """Stop routing to a model; feedback still pending for it is dropped."""
        with self._lock:
            if name not in self.models:
                raise ConfigError(f"unknown model {name!r}; known: {list(self.models)}")
            if len(self.models) == 1:
                raise ConfigError("cannot remove the router's last model")
            self.policy.remove_arm(name)
            del self.models[name]
            self.costs.remove(name)
            del self.failures[name]
            for route_id in [r for r, p in self._pending.items() if p.model == name]:
                self._close(route_id, "dropped")  # no expired_reward: the model is gone from the policy

    # -- routing --------------------------------------------------------------------------------------------
    def eligible(self, prompt_tokens: int, models: Sequence[str] | None = None, tools: bool = False,
                 max_tokens: int | None = None) -> list[str]:
        """Models allowed for a request: in the allowed subset, tool-capable if tools are bound, long enough."""
        if models is not None:
            unknown = [m for m in models if m not in self.models]
            if unknown:
                raise ConfigError(f"models contains unknown names {unknown}; known: {list(self.models)}")
        names = list(self.models) if models is None else [m for m in self.models if m in set(models)]
        names = [m for m in names if not tools or self.models[m].supports_tools]
        needed = prompt_tokens + (max_tokens or 0)
        names = [m for m in names if self.models[m].context_window is None or self.models[m].context_window >= needed]
        names = [m for m in names if not max_tokens or self.models[m].max_output_tokens is None
                 or self.models[m].max_output_tokens >= max_tokens]  # providers refuse a larger max_tokens
        if not names:
            raise NoEligibleModelError(
                f"no model is eligible for this request (allowed={list(models) if models is not None else 'all'}, "
                f"tools={tools}, prompt_tokens={prompt_tokens}, max_tokens={max_tokens})")
        return names

    def route(self, prompt: str | Messages, cost_weight: float | None = None, models: Sequence[str] | None = None,
              tools: bool = False, max_tokens: int | None = None, budget_key: str | None = None,
              task: str | None = None) -> Decision:
        """Choose a model for `prompt` (a string or chat messages) under the dial `cost_weight`; `task` names
        the kind of request it is, one of the router's `tasks` (None: routed on the prompt alone).

        The decision waits for `feedback(decision.route_id, score)` until it expires. With a budget, the
        decision holds its model's worst-case cost under `budget_key` (a user or tenant; None: the global
        account only) until `settle(route_id, cost)` or `release(route_id)`; complete/stream do both themselves.
        """
        dial = self.cost_weight if cost_weight is None else check_cost_weight(cost_weight)
        query, full_text = check_prompt(prompt, self.max_prompt_chars)
        prompt_tokens = estimate_tokens(full_text)
        vector = self._vector(query, task)
        with self._lock:
            self._expire()
            names = self.eligible(prompt_tokens, models, tools, max_tokens)
            if self.budget is not None:
                worst = self._affordable(names, prompt_tokens, max_tokens, budget_key)
                names = self._paced(list(worst), vector, prompt_tokens, max_tokens, dial, budget_key)
            cost = self.costs.predict(names, prompt_tokens, max_tokens)
            tau = cost.max() or 1.0
            probs, quality = self.policy.probabilities(vector, [self.policy.index(m) for m in names], cost / tau, dial)
            choice = int(self.rng.choice(len(names), p=probs))
            decision = Decision(
                route_id=uuid.uuid4().hex, model=names[choice], propensity=float(probs[choice]), cost_weight=dial,
                predicted_quality=dict(zip(names, map(float, quality))), predicted_cost=dict(zip(names, map(float, cost))),
                probabilities=dict(zip(names, map(float, probs))), created_at=time.time(), task=task)
            if self.tokens is not None:
                decision = replace(decision, feedback_token=self.tokens.issue(decision.route_id))
            if self.budget is not None:
                hold = self.budget.reserve(worst[decision.model], budget_key, expected=float(cost[choice]))
                self._held[decision.route_id] = (hold, {m: worst[m] for m in names})
            self._pending[decision.route_id] = _Pending(vector, decision.model, decision.created_at, decision)
            self.costs.routed(decision.route_id, decision.model, prompt_tokens)
            while len(self._pending) > self.max_pending:
                self._close(next(iter(self._pending)), "expired")
        if self.log is not None:
            self.log.record_decision(decision, prompt=full_text if self.store_prompts else None,
                                     vector=vector if self.store_vectors else None)
        if self.replica is not None:
            self.replica.maybe_sync(self._lock)
        return decision

    # -- feedback -------------------------------------------------------------------------------------------
    def feedback(self, route_id: str, score: float, token: str | None = None, source: str | None = None) -> None:
        """Reward the model chosen for `route_id` with `score` in [0, 1] (1 = best answer).

        With a feedback_secret, `token` must be the decision's feedback_token; with a source_limit, `source`
        names who gave the feedback. Once this returns, the feedback is acknowledged: it is in the local state
        and, with a state_store, queued until a sync merges it.
        """
        score = check_score(score)
        if self.tokens is not None:
            self.tokens.verify(route_id, token)
        with self._lock:
            self._expire()
            pending = self._pending.get(route_id)
            if pending is None:
                reason = self._closed.get(route_id)
                if reason == "rewarded":
                    raise DuplicateFeedbackError(f"route_id {route_id!r} was already rewarded")
                if reason == "expired":
                    raise UnknownRouteError(f"route_id {route_id!r} expired before feedback arrived")
                if reason == "failed":
                    raise UnknownRouteError(f"route_id {route_id!r} has no answer to rate: its call failed")
                if reason == "dropped":
                    raise UnknownRouteError(f"route_id {route_id!r} expired: its model was removed from the router")
                raise UnknownRouteError(f"unknown route_id {route_id!r}")
            if self.quota is not None:
                source = self.quota.check(source)
            routed = pending.decision
            tau = max(routed.predicted_cost.values()) or 1.0
            self.policy.update_routed(pending.vector, pending.model, score, routed.predicted_cost[pending.model] / tau,
                                      routed.cost_weight, routed.probabilities[pending.model])
            self._close(route_id, "rewarded")
            if self.quota is not None:
                self.quota.count(source)
        if self.log is not None:
            self.log.record_feedback(route_id, score)
        if self.replica is not None:
            self.replica.maybe_sync(self._lock)

    def observe(self, prompt: str | Messages, model: str, score: float, task: str | None = None) -> None:
        """Learn an outcome seen outside routing (offline data, a full-information warm start)."""
        score = check_score(score)
        if model not in self.models:
            raise ConfigError(f"unknown model {model!r}; known: {list(self.models)}")
        vector = self._vector(check_prompt(prompt, self.max_prompt_chars)[0], task)
        with self._lock:
            self.policy.update(vector, model, score)
        if self.replica is not None:
            self.replica.maybe_sync(self._lock)

    def sync(self) -> None:
        """Push this replica's unsynced updates to the state_store and serve from the merged totals.

        Raises StoreUnavailableError if the store cannot be reached (the updates stay queued).
        """
        if self.replica is None:
            raise ConfigError("sync needs a router created with a state_store")
        self.replica.sync(self._lock)

    def _hidden(self, messages: Messages) -> AbstractContextManager[None]:
        """Keep the prompt out of log records (LiteLLM logs requests at DEBUG) unless store_prompts is on."""
        return nullcontext() if self.store_prompts else hidden(query_text(messages)[1].split("\n"))

    def pending(self, route_id: str) -> bool:
        """Whether `route_id` is still waiting for feedback."""
        with self._lock:
            self._expire()
            return route_id in self._pending

    def _close(self, route_id: str, reason: str) -> None:
        pending = self._pending.pop(route_id)
        if reason == "expired":
            self.settle(route_id)  # a hold nobody settled or released: assume the call was made, at worst case
            if self.expired_reward is not None:
                self.policy.update(pending.vector, pending.model, self.expired_reward)
        self._closed[route_id] = reason
        while len(self._closed) > self.max_pending:
            self._closed.popitem(last=False)

    def _expire(self) -> None:
        deadline = time.time() - self.pending_ttl
        while self._pending:
            route_id, oldest = next(iter(self._pending.items()))
            if oldest.created_at > deadline:
                break
            self._close(route_id, "expired")

    # -- budget -------------------------------------------------------------------------------------------------
    def worst_case_cost(self, model: str, prompt_tokens: int, max_tokens: int | None) -> float:
        """USD a call can cost at most: the prompt plus max_tokens (else the model's output limit, else
        expected_output_tokens) at the model's prices."""
        card = self.models[model]
        return card.cost(prompt_tokens, max_tokens or card.max_output_tokens or self.expected_output_tokens)

    def _affordable(self, names: list[str], prompt_tokens: int, max_tokens: int | None,
                    budget_key: str | None) -> dict[str, float]:
        """Worst-case cost of each model in `names` whose worst case fits the budget; BudgetExceededError if none."""
        worst = {m: self.worst_case_cost(m, prompt_tokens, max_tokens) for m in names}
        fits = {m: c for m, c in worst.items() if self.budget.fits(c, budget_key)}
        if not fits:
            raise BudgetExceededError(
                f"budget exhausted: ${self.budget.remaining(budget_key):.6g} left"
                f"{'' if budget_key is None else f' for key {budget_key!r}'}, and the cheapest eligible model's "
                f"worst-case cost is ${min(worst.values()):.6g} (give a smaller max_tokens or wait for the next period)")
        return fits

    def _paced(self, names: list[str], vector: np.ndarray, prompt_tokens: int, max_tokens: int | None, dial: float,
               budget_key: str | None) -> list[str]:
        """The affordable models the budget's pacer allows, judged by predicted quality per predicted USD."""
        if self.budget.pacer == "none":
            return names
        cost = self.costs.predict(names, prompt_tokens, max_tokens)
        _, quality = self.policy.probabilities(vector, [self.policy.index(m) for m in names], cost / (cost.max() or 1.0),
                                               dial)
        return self.budget.pace(names, quality, cost, budget_key)

    def settle(self, route_id: str, cost: float | None = None) -> None:
        """Charge the budget the real cost (USD) of the call made for `route_id`, replacing its hold; None charges
        the hold itself (the worst case), for a call made whose usage never arrived.

        complete/stream settle by themselves; call this after routing with `route` and calling the model yourself.
        A hold still open when its route expires (`pending_ttl`) is charged in full. The router's cost model
        learns from the cost (not from a worst case); once settled, it does nothing.
        """
        with self._lock:
            held = self._held.pop(route_id, None)
            self.costs.settle(route_id, cost)
        if held is not None:
            self.budget.settle(held[0], held[0].amount if cost is None else cost)

    def release(self, route_id: str) -> None:
        """Drop the budget hold of `route_id` without charge (its call was not made)."""
        with self._lock:
            held = self._held.pop(route_id, None)
            self.costs.forget(route_id)
        if held is not None:
            self.budget.release(held[0])

    # -- calling models -------------------------------------------------------------------------------------
    def _prepare(self, prompt: str | Messages, cost_weight: float | None, models: Sequence[str] | None,
                 kwargs: Mapping[str, Any]) -> tuple[list[dict[str, Any]], Decision, list[str]]:
        messages = messages_of(prompt)
        decision = self.route(messages, cost_weight, models, tools=bool(kwargs.get("tools")),
                              max_tokens=kwargs.get("max_tokens"),
                              budget_key=kwargs.pop("budget_key", None),  # type: ignore[attr-defined]
                              task=kwargs.pop("task", None))  # type: ignore[attr-defined]
        held = self._held.get(decision.route_id)
        order = decision.ranking() if held is None else [m for m in decision.ranking() if held[1][m] <= held[0].amount]
        return messages, decision, order[: self.max_attempts]

    def _served(self, decision: Decision, model: str, failed: list[str]) -> Decision:
        """The decision as served: after fallbacks the pending feedback is re-pointed at the model that answered."""
        if model == decision.model:
            return decision
        with self._lock:
            if decision.route_id in self._pending:
                self._pending[decision.route_id].model = model
            self.costs.served(decision.route_id, model)
        served = replace(decision, model=model, propensity=decision.probabilities[model], failed=tuple(failed))
        if self.log is not None:
            self.log.record_decision(served)
        return served

    def _failed(self, decision: Decision, model: str, error: BaseException, failures: dict[str, BaseException]) -> None:
        if not _retryable(error):
            with self._lock:
                if decision.route_id in self._pending:
                    self._close(decision.route_id, "failed")
            self.release(decision.route_id)
            raise error
        failures[model] = error
        with self._lock:
            self.failures[model] = self.failures.get(model, 0) + 1
        if self.log is not None:
            self.log.record_failure(decision.route_id, error)

    def _all_failed(self, decision: Decision, failures: dict[str, BaseException]) -> AllModelsFailedError:
        with self._lock:
            if decision.route_id in self._pending:
                self._close(decision.route_id, "failed")
        self.release(decision.route_id)
        detail = "; ".join(f"{m}: {type(e).__name__}" for m, e in failures.items())
        return AllModelsFailedError(f"no model could serve the request after {len(failures)} attempt(s): {detail}",
                                    failures)

    def _finish(self, decision: Decision, model: str, response: Any) -> Completion:
        usage = usage_of(response)
        cost = call_cost(response, self.models[model], usage)
        self.settle(decision.route_id, cost)
        if self.log is not None:
            self.log.record_call(decision.route_id, cost, usage["prompt_tokens"], usage["completion_tokens"])
        return Completion(response=response, decision=decision, cost=cost, usage=usage)

    def complete(self, prompt: str | Messages, cost_weight: float | None = None, models: Sequence[str] | None = None,
                 **kwargs: Any) -> Completion:
        """Route, then call the chosen model with litellm.completion (kwargs pass through, e.g. temperature,
        except `task` and `budget_key`, which go to `route`).

        On a provider failure the next-best eligible model is tried, up to `max_attempts` models.
        """
        import litellm

        messages, decision, order = self._prepare(prompt, cost_weight, models, kwargs)
        failures: dict[str, BaseException] = {}
        for model in order:
            try:
                with self._hidden(messages):
                    response = litellm.completion(messages=messages, **self.models[model].call_kwargs(), **kwargs)
            except Exception as error:
                self._failed(decision, model, error, failures)
                continue
            return self._finish(self._served(decision, model, list(failures)), model, response)
        raise self._all_failed(decision, failures)

    async def acomplete(self, prompt: str | Messages, cost_weight: float | None = None,
                        models: Sequence[str] | None = None, **kwargs: Any) -> Completion:
        """Async `complete`, through litellm.acompletion."""
        import litellm

        messages, decision, order = self._prepare(prompt, cost_weight, models, kwargs)
        failures: dict[str, BaseException] = {}
        for model in order:
            try:
                with self._hidden(messages):
                    response = await litellm.acompletion(messages=messages, **self.models[model].call_kwargs(),
                                                         **kwargs)
            except Exception as error:
                self._failed(decision, model, error, failures)
                continue
            return self._finish(self._served(decision, model, list(failures)), model, response)
        raise self._all_failed(decision, failures)

    def stream(self, prompt: str | Messages, cost_weight: float | None = None, models: Sequence[str] | None = None,
               **kwargs: Any) -> RoutedStream:
        """Route, then stream the chosen model's answer; a model that fails before its first chunk is replaced."""
        messages, decision, order = self._prepare(prompt, cost_weight, models, kwargs)
        return RoutedStream(self, messages, decision, order, kwargs)

    def astream(self, prompt: str | Messages, cost_weight: float | None = None, models: Sequence[str] | None = None,
                **kwargs: Any) -> AsyncRoutedStream:
        """Async `stream`."""
        messages, decision, order = self._prepare(prompt, cost_weight, models, kwargs)
        return AsyncRoutedStream(self, messages, decision, order, kwargs)

    # -- persistence ----------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write config and learned state to one safetensors file, atomically."""
        from .state import save_router

        save_router(self, path)

    @classmethod
    def load(cls, path: str | Path, encoder: Encoder | Callable | None = None,
             api_keys: Mapping[str, str] | None = None, **settings: Any) -> "Router":
        """Rebuild a saved router; API keys are never saved, so pass them per model name in `api_keys`."""
        from .state import load_router

        return load_router(path, encoder=encoder, api_keys=api_keys, **settings)

"""The Router: the one place that ties models, encoder, policy, decision log and LiteLLM together."""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator, Mapping, Sequence

import numpy as np

from .decision import Completion, Decision, Messages, messages_of, query_text
from .encoders import Encoder, as_encoder
from .errors import (AllModelsFailedError, ConfigError, DuplicateFeedbackError, NoEligibleModelError,
                     UnknownRouteError)
from .models import Model, estimate_tokens
from .policies import Policy, make_policy
from .store import DecisionLog

__all__ = ["Router", "RoutedStream", "AsyncRoutedStream", "check_cost_weight", "check_score"]


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


class Router:
    """Routes each request to one of `models`, calls it through LiteLLM and learns from feedback.

    Args:
        models: model cards, or LiteLLM names whose prices LiteLLM's cost map knows.
        policy: a registered policy name (see `bandit_router.policies.POLICIES`) or a Policy instance.
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
    """

    def __init__(self, models: Sequence[Model | str], policy: str | Policy = "linucb",
                 policy_settings: Mapping[str, Any] | None = None, encoder: Encoder | Callable | None = None,
                 cost_weight: float = 0.0, seed: int | None = None, log: str | Path | DecisionLog | None = None,
                 store_prompts: bool = False, store_vectors: bool = False, pending_ttl: float = 86_400.0,
                 max_pending: int = 100_000, expired_reward: float | None = None,
                 expected_output_tokens: int = 256, max_attempts: int = 3) -> None:
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
        self.max_attempts = max_attempts
        self.store_prompts = store_prompts
        self.store_vectors = store_vectors
        self.seed = seed
        self.encoder = as_encoder(encoder)
        if isinstance(policy, Policy):
            if policy_settings:
                raise ConfigError("policy_settings apply to a policy given by name, not to a Policy instance")
            if list(policy.arms) != names:
                raise ConfigError(f"policy arms {policy.arms} differ from the router's models {names}")
            self.policy = policy
        else:
            self.policy = make_policy(policy, self.encoder.dim, names, seed=seed, **(policy_settings or {}))
        self.rng = np.random.default_rng(None if seed is None else [seed, 1])
        self.log = DecisionLog(log) if isinstance(log, (str, Path)) else log
        self.failures: dict[str, int] = {name: 0 for name in names}
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._closed: OrderedDict[str, str] = OrderedDict()  # route_id -> "rewarded" or "expired"
        self._lock = threading.RLock()

    # -- models ---------------------------------------------------------------------------------------------
    def add_model(self, model: Model | str) -> None:
        """Make a new model eligible from the next request on."""
        card = model if isinstance(model, Model) else Model(model)
        with self._lock:
            if card.name in self.models:
                raise ConfigError(f"model {card.name!r} is already in the router")
            self.policy.add_arm(card.name)
            self.models[card.name] = card
            self.failures[card.name] = 0

    def remove_model(self, name: str) -> None:
        """Stop routing to a model; feedback still pending for it is dropped."""
        with self._lock:
            if name not in self.models:
                raise ConfigError(f"unknown model {name!r}; known: {list(self.models)}")
            if len(self.models) == 1:
                raise ConfigError("cannot remove the router's last model")
            self.policy.remove_arm(name)
            del self.models[name]
            del self.failures[name]
            for route_id in [r for r, p in self._pending.items() if p.model == name]:
                self._close(route_id, "expired")

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
        if not names:
            raise NoEligibleModelError(
                f"no model is eligible for this request (allowed={list(models) if models is not None else 'all'}, "
                f"tools={tools}, prompt_tokens={prompt_tokens}, max_tokens={max_tokens})")
        return names

    def route(self, prompt: str | Messages, cost_weight: float | None = None, models: Sequence[str] | None = None,
              tools: bool = False, max_tokens: int | None = None) -> Decision:
        """Choose a model for `prompt` (a string or chat messages) under the dial `cost_weight`.

        The decision waits for `feedback(decision.route_id, score)` until it expires.
        """
        dial = self.cost_weight if cost_weight is None else check_cost_weight(cost_weight)
        query, full_text = query_text(messages_of(prompt))
        prompt_tokens = estimate_tokens(full_text)
        vector = self.encoder(query)
        with self._lock:
            self._expire()
            names = self.eligible(prompt_tokens, models, tools, max_tokens)
            output_tokens = max_tokens or self.expected_output_tokens
            cost = np.array([self.models[m].cost(prompt_tokens, output_tokens) for m in names])
            tau = cost.max() or 1.0
            probs, quality = self.policy.probabilities(vector, [self.policy.index(m) for m in names], cost / tau, dial)
            choice = int(self.rng.choice(len(names), p=probs))
            decision = Decision(
                route_id=uuid.uuid4().hex, model=names[choice], propensity=float(probs[choice]), cost_weight=dial,
                predicted_quality=dict(zip(names, map(float, quality))), predicted_cost=dict(zip(names, map(float, cost))),
                probabilities=dict(zip(names, map(float, probs))), created_at=time.time())
            self._pending[decision.route_id] = _Pending(vector, decision.model, decision.created_at)
            while len(self._pending) > self.max_pending:
                self._close(next(iter(self._pending)), "expired")
        if self.log is not None:
            self.log.record_decision(decision, prompt=full_text if self.store_prompts else None,
                                     vector=vector if self.store_vectors else None)
        return decision

    # -- feedback -------------------------------------------------------------------------------------------
    def feedback(self, route_id: str, score: float) -> None:
        """Reward the model chosen for `route_id` with `score` in [0, 1] (1 = best answer)."""
        score = check_score(score)
        with self._lock:
            self._expire()
            pending = self._pending.get(route_id)
            if pending is None:
                reason = self._closed.get(route_id)
                if reason == "rewarded":
                    raise DuplicateFeedbackError(f"route_id {route_id!r} was already rewarded")
                if reason == "expired":
                    raise UnknownRouteError(f"route_id {route_id!r} expired before feedback arrived")
                raise UnknownRouteError(f"unknown route_id {route_id!r}")
            self.policy.update(pending.vector, pending.model, score)
            self._close(route_id, "rewarded")
        if self.log is not None:
            self.log.record_feedback(route_id, score)

    def observe(self, prompt: str | Messages, model: str, score: float) -> None:
        """Learn an outcome seen outside routing (offline data, a full-information warm start)."""
        score = check_score(score)
        if model not in self.models:
            raise ConfigError(f"unknown model {model!r}; known: {list(self.models)}")
        vector = self.encoder(query_text(messages_of(prompt))[0])
        with self._lock:
            self.policy.update(vector, model, score)

    def pending(self, route_id: str) -> bool:
        """Whether `route_id` is still waiting for feedback."""
        with self._lock:
            return route_id in self._pending

    def _close(self, route_id: str, reason: str) -> None:
        pending = self._pending.pop(route_id)
        if reason == "expired" and self.expired_reward is not None:
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

    # -- calling models -------------------------------------------------------------------------------------
    def _prepare(self, prompt: str | Messages, cost_weight: float | None, models: Sequence[str] | None,
                 kwargs: Mapping[str, Any]) -> tuple[list[dict[str, Any]], Decision, list[str]]:
        messages = messages_of(prompt)
        decision = self.route(messages, cost_weight, models, tools=bool(kwargs.get("tools")),
                              max_tokens=kwargs.get("max_tokens"))
        return messages, decision, decision.ranking()[: self.max_attempts]

    def _served(self, decision: Decision, model: str, failed: list[str]) -> Decision:
        """The decision as served: after fallbacks the pending feedback is re-pointed at the model that answered."""
        if model == decision.model:
            return decision
        with self._lock:
            if decision.route_id in self._pending:
                self._pending[decision.route_id].model = model
        served = replace(decision, model=model, propensity=decision.probabilities[model], failed=tuple(failed))
        if self.log is not None:
            self.log.record_decision(served)
        return served

    def _failed(self, decision: Decision, model: str, error: BaseException, failures: dict[str, BaseException]) -> None:
        if not _retryable(error):
            with self._lock:
                if decision.route_id in self._pending:
                    self._close(decision.route_id, "expired")
            raise error
        failures[model] = error
        with self._lock:
            self.failures[model] = self.failures.get(model, 0) + 1
        if self.log is not None:
            self.log.record_failure(decision.route_id, error)

    def _all_failed(self, decision: Decision, failures: dict[str, BaseException]) -> AllModelsFailedError:
        with self._lock:
            if decision.route_id in self._pending:
                self._close(decision.route_id, "expired")
        detail = "; ".join(f"{m}: {type(e).__name__}" for m, e in failures.items())
        return AllModelsFailedError(f"no model could serve the request after {len(failures)} attempt(s): {detail}",
                                    failures)

    def _finish(self, decision: Decision, model: str, response: Any) -> Completion:
        usage = _usage(response)
        cost = self.models[model].cost(usage["prompt_tokens"], usage["completion_tokens"])
        if self.log is not None:
            self.log.record_call(decision.route_id, cost, usage["prompt_tokens"], usage["completion_tokens"])
        return Completion(response=response, decision=decision, cost=cost, usage=usage)

    def complete(self, prompt: str | Messages, cost_weight: float | None = None, models: Sequence[str] | None = None,
                 **kwargs: Any) -> Completion:
        """Route, then call the chosen model with litellm.completion (kwargs pass through, e.g. temperature).

        On a provider failure the next-best eligible model is tried, up to `max_attempts` models.
        """
        import litellm

        messages, decision, order = self._prepare(prompt, cost_weight, models, kwargs)
        failures: dict[str, BaseException] = {}
        for model in order:
            try:
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
                response = await litellm.acompletion(messages=messages, **self.models[model].call_kwargs(), **kwargs)
            except Exception as error:
                self._failed(decision, model, error, failures)
                continue
            return self._finish(self._served(decision, model, list(failures)), model, response)
        raise self._all_failed(decision, failures)

    def stream(self, prompt: str | Messages, cost_weight: float | None = None, models: Sequence[str] | None = None,
               **kwargs: Any) -> "RoutedStream":
        """Route, then stream the chosen model's answer; a model that fails before its first chunk is replaced."""
        messages, decision, order = self._prepare(prompt, cost_weight, models, kwargs)
        return RoutedStream(self, messages, decision, order, kwargs)

    def astream(self, prompt: str | Messages, cost_weight: float | None = None, models: Sequence[str] | None = None,
                **kwargs: Any) -> "AsyncRoutedStream":
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


def _usage(response: Any) -> dict[str, int]:
    usage = getattr(response, "usage", None)
    get = (lambda k: getattr(usage, k, None) or 0) if usage is not None else (lambda k: 0)
    return {"prompt_tokens": int(get("prompt_tokens")), "completion_tokens": int(get("completion_tokens")),
            "total_tokens": int(get("total_tokens"))}


class _StreamBase:
    """A routed stream: iterate it for LiteLLM chunks; `decision` names the model serving it, and `cost` and
    `usage` are set when the stream ends (usage is requested from the provider with include_usage)."""

    def __init__(self, router: Router, messages: list[dict[str, Any]], decision: Decision, order: list[str],
                 kwargs: Mapping[str, Any]) -> None:
        self.router = router
        self.decision = decision
        self.cost: float | None = None
        self.usage: dict[str, int] = {}
        self._messages = messages
        self._order = order
        self._kwargs = {**kwargs, "stream": True,
                        "stream_options": {"include_usage": True, **kwargs.get("stream_options", {})}}
        self._failures: dict[str, BaseException] = {}

    def _call_kwargs(self, model: str) -> dict[str, Any]:
        return {"messages": self._messages, **self.router.models[model].call_kwargs(), **self._kwargs}

    def _started(self, model: str) -> None:
        self.decision = self.router._served(self.decision, model, list(self._failures))

    def _observe(self, chunk: Any) -> None:
        if getattr(chunk, "usage", None):
            self.usage = _usage(chunk)

    def _ended(self, model: str) -> None:
        usage = self.usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        self.cost = self.router.models[model].cost(usage["prompt_tokens"], usage["completion_tokens"])
        if self.router.log is not None:
            self.router.log.record_call(self.decision.route_id, self.cost, usage["prompt_tokens"],
                                        usage["completion_tokens"])


class RoutedStream(_StreamBase):
    def __iter__(self) -> Iterator[Any]:
        import litellm

        for model in self._order:
            try:
                chunks = iter(litellm.completion(**self._call_kwargs(model)))
                first = next(chunks, None)
            except Exception as error:
                self.router._failed(self.decision, model, error, self._failures)
                continue
            self._started(model)
            if first is not None:
                self._observe(first)
                yield first
            for chunk in chunks:
                self._observe(chunk)
                yield chunk
            self._ended(model)
            return
        raise self.router._all_failed(self.decision, self._failures)


class AsyncRoutedStream(_StreamBase):
    async def __aiter__(self) -> AsyncIterator[Any]:
        import litellm

        for model in self._order:
            try:
                chunks = (await litellm.acompletion(**self._call_kwargs(model))).__aiter__()
                first = await anext(chunks, None)
            except Exception as error:
                self.router._failed(self.decision, model, error, self._failures)
                continue
            self._started(model)
            if first is not None:
                self._observe(first)
                yield first
            async for chunk in chunks:
                self._observe(chunk)
                yield chunk
            self._ended(model)
            return
        raise self.router._all_failed(self.decision, self._failures)

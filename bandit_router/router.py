"""The Router: a thin facade over the collaborators that choose, wait for feedback, hold budget and call models."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .atomic import write_atomic
from .budget import Budget
from .calls import Cooldowns, ModelCaller, route_kwargs
from .checks import (check_budget_key, check_call_kwargs, check_cost_weight, check_integer, check_prompt,
                     check_score)
from .context import PromptContext, eligible
from .costs import CostModel
from .decision import Completion, Decision, Messages, has_image, messages_of
from .encoders import Encoder
from .errors import BudgetExceededError, ConfigError, NoEligibleModelError, StoreUnavailableError
from .gate import BudgetGate
from .ledger import OutcomeLedger, Pending
from .models import Model, check_tokens, estimate_tokens
from .outcome import Outcome, normalised_costs
from .policies import Policy, make_policy
from .settings import FeedbackSettings, Limits, LogSettings, settings_or_default
from .spend import SpendTarget
from .state import encode_router, load_router
from .store import DecisionLog, Replica, StateStore
from .streaming import AsyncRoutedStream, RoutedStream
from .tasks import TaskHints

__all__ = ["Router", "check_cost_weight", "check_score", "check_prompt"]

log = logging.getLogger(__name__)


class Router:
    """Routes each request to one of `models`, calls it through LiteLLM and learns from feedback.

    Args:
        models: model cards, or LiteLLM names whose prices LiteLLM's cost map knows.
        policy: a registered policy name (see `bandit_router.policies.policy_names()`) or a Policy instance.
        policy_settings: settings of the named policy (e.g. {"dial_spread": 0.0} for shrunk-linucb, the default).
        encoder: None (all-MiniLM-L6-v2), a name ("static-all-MiniLM-L6-v2", "hashing:<dim>", a
            sentence-transformers model), an Encoder, or a callable text -> vector.
        cost_weight: default dial in [0, 1] (0 routes on quality only), or a SpendTarget that sets the dial from a
            mean spend per request.
        seed: seed of every random choice the router and its policy make.
        log: decision log: a SQLite file path or a DecisionLog (None keeps no log), or LogSettings to also store
            prompt text or vectors.
        budget: a spend Budget: routes reserve each call's worst-case cost, calls settle their real cost, and the
            budget's pacer narrows the models a request may use (see `bandit_router.budget`).
        state_store: share learned state with other replicas through a SQLiteStateStore (one machine) or a
            RedisStateStore (many); policies that declare `shares_state` only (see `bandit_router.store`).
        tasks: names of the kinds of request the application sends (e.g. its agent steps or endpoints), or
            TaskHints(names, text_weight); a request naming one (`task=`) is routed on the prompt and the task.
        feedback: FeedbackSettings: how long decisions wait for feedback, expiry, feedback tokens, source quotas.
        limits: Limits: expected output length, attempts per call, longest prompt, seconds between syncs.
    """

    def __init__(self, models: Sequence[Model | str], policy: str | Policy = "shrunk-linucb",
                 policy_settings: Mapping[str, Any] | None = None, encoder: Encoder | Callable | str | None = None,
                 cost_weight: float | SpendTarget = 0.0, seed: int | None = None,
                 log: str | Path | DecisionLog | LogSettings | None = None, budget: Budget | None = None,
                 state_store: StateStore | None = None, tasks: Sequence[str] | TaskHints = (),
                 feedback: FeedbackSettings | None = None, limits: Limits | None = None) -> None:
        if isinstance(models, (str, Model)):
            raise ConfigError(f"models must be a list of model names or Model cards, got {models!r}; write "
                              f"[{models!r}]")
        cards = [m if isinstance(m, Model) else Model(m) for m in models]
        if not cards:
            raise ConfigError("models must name at least one model")
        names = [m.name for m in cards]
        if len(set(names)) != len(names):
            raise ConfigError(f"models must have distinct names, got {names}")
        self.models: dict[str, Model] = {m.name: m for m in cards}
        self.cost_weight = cost_weight
        self.seed = seed
        self.feedback_settings: FeedbackSettings = settings_or_default(feedback, FeedbackSettings, "feedback")
        self.limits: Limits = settings_or_default(limits, Limits, "limits")
        self.log_settings = log if isinstance(log, LogSettings) else LogSettings(log)
        self.context = PromptContext(encoder, tasks)
        if isinstance(policy, Policy):
            if policy_settings:
                raise ConfigError("policy_settings apply to a policy given by name, not to a Policy instance")
            if list(policy.arms) != names:
                raise ConfigError(f"policy arms {policy.arms} differ from the router's models {names}")
            self.policy = policy
        else:
            self.policy = make_policy(policy, self.dim, names, seed=seed, **(policy_settings or {}))
        self.rng = np.random.default_rng(None if seed is None else [seed, 1])
        self.log = self.log_settings.open()
        self.lock = threading.RLock()
        self.costs = CostModel(cards, self.limits.expected_output_tokens)  # what calls are expected to cost
        self.gate = BudgetGate(budget, self.models, self.costs, self.limits.expected_output_tokens, self.lock)
        self.gate.note_uncapped(cards)
        self.ledger = OutcomeLedger(self.feedback_settings, lambda o: self.policy.learn(o), self.lock,
                                    state_store)
        self.caller = ModelCaller(self.models, self.ledger, self.gate, self.costs, self.log,
                                  self.log_settings.store_prompts, self.limits.max_attempts, self.lock,
                                  Cooldowns(self.limits.cooldown, self.limits.cooldown_after))
        self.replica: Replica | None = None
        if state_store is not None:
            if not self.policy.shares_state:
                raise ConfigError(f"state_store needs a linear policy that shares its state (shrunk-linucb, linucb, "
                                  f"thompson, epsilon-greedy), got {self.policy.name!r}")
            self.replica = Replica(state_store, self.policy, float(self.limits.sync_every), self.layout)
            self.replica.maybe_sync(self.lock)

    def __repr__(self) -> str:
        dial = self.spend_target if self.spend_target is not None else self.cost_weight
        return (f"Router(models={list(self.models)}, policy={self.policy.name!r}, encoder={self.encoder.name!r}, "
                f"cost_weight={dial!r})")

    @property
    def cost_weight(self) -> float:
        """The default dial: the fixed one, or the spend target's current dial."""
        return self._default.dial if isinstance(self._default, SpendTarget) else self._default

    @cost_weight.setter
    def cost_weight(self, value: float | SpendTarget) -> None:
        self._default = value if isinstance(value, SpendTarget) else check_cost_weight(value)

    @property
    def spend_target(self) -> SpendTarget | None:
        """The SpendTarget that sets the default dial (None: a fixed dial)."""
        return self._default if isinstance(self._default, SpendTarget) else None

    # -- what the policy sees -------------------------------------------------------------------------------
    encoder = property(lambda self: self.context.encoder, doc="The prompt encoder.")
    hints = property(lambda self: self.context.hints, doc="The declared tasks and text weight (None: no tasks).")
    tasks = property(lambda self: self.context.tasks, doc="The declared task names (empty: prompt alone).")
    @property
    def layout(self) -> str:
        """How the policy's vectors are built, as JSON; a linear policy without an intercept says so (its statistics
        are a size smaller, so they cannot be added to other replicas')."""
        if getattr(self.policy.config, "intercept", True):
            return self.context.layout
        return json.dumps({**json.loads(self.context.layout), "intercept": False})
    dim = property(lambda self: self.context.dim, doc="Length of the vectors the policy sees.")
    budget = property(lambda self: self.gate.budget, doc="The spend Budget (None: no budget).")
    failures = property(lambda self: self.caller.failures, doc="Provider failures per model.")
    tokens = property(lambda self: self.ledger.tokens, doc="The feedback token issuer (None: no secret).")

    def vectors(self, prompts: Sequence[str], tasks: Sequence[str | None] | None = None) -> np.ndarray:
        """The vectors the policy sees for prompt texts `prompts` and their tasks (None: none), shape (n, dim)."""
        return self.context.vectors(prompts, tasks)

    def check_task(self, task: Any) -> None:
        """ConfigError unless `task` is None or one of the router's tasks."""
        self.context.check_task(task)

    # -- models ---------------------------------------------------------------------------------------------
    def add_model(self, model: Model | str, features: np.ndarray | None = None) -> None:
        """Make a new model eligible from the next request on.

        `features` (see `bandit_router.policies.shared.model_features`) let a policy that shares what it learns
        across models (shared-linucb) predict the new model's quality before any feedback; None adds it bare.
        """
        card = model if isinstance(model, Model) else Model(model)
        with self.lock:
            if card.name in self.models:
                raise ConfigError(f"model {card.name!r} is already in the router")
            if features is None:
                self.policy.add_arm(card.name)
            elif self.policy.uses_features:
                self.policy.add_arm(card.name, features=features)  # type: ignore[call-arg]
            else:
                raise ConfigError(f"policy {self.policy.name!r} does not use model features; use shared-linucb")
            self.models[card.name] = card
            self.costs.add(card)
            self.caller.added(card.name)
        self.gate.note_uncapped([card])

    def replace_model(self, model: Model) -> None:
        """Give a model already in the router a new card of the same name: a new endpoint, key, prices or limits
        (e.g. `dataclasses.replace(router.models[name], api_base=url)`), from the next request on. What was learned
        about its quality is kept, and so are its learned output lengths unless the card changes between priced
        and unpriced (the cost model then learns the model's cost afresh)."""
        if not isinstance(model, Model):
            raise ConfigError(f"model must be a bandit_router.Model card, got {type(model).__name__}")
        with self.lock:
            if model.name not in self.models:
                raise ConfigError(f"unknown model {model.name!r}; known: {list(self.models)} (add_model adds one)")
            self.models[model.name] = model
            self.costs.replace(model)
            self.caller.cooldowns.reset(model.name)  # its new card gets a fresh start
        self.gate.note_uncapped([model])

    def remove_model(self, name: str) -> None:
        """Stop routing to a model. Calls already under way on it end as usual (charged their cost); a call or stream
        routed to it that has not started goes to the next-best model. Every decision routed to it stops waiting for
        feedback, those answered by the next-best model too (their ratings are refused)."""
        self._sync_first(f"remove_model({name!r})", "dropped with the model")  # to the replicas that keep it
        with self.lock:
            if name not in self.models:
                raise ConfigError(f"unknown model {name!r}; known: {list(self.models)}")
            if len(self.models) == 1:
                raise ConfigError("cannot remove the router's last model")
            self.policy.remove_arm(name)
            self.caller.removed(self.models.pop(name))
            self.costs.remove(name)
            self.ledger.drop_model(name)  # no expired_reward: the model is gone from the policy

    # -- routing --------------------------------------------------------------------------------------------
    def route(self, prompt: str | Messages, cost_weight: float | None = None, models: Sequence[str] | None = None,
              tools: bool | Sequence[Any] = False, max_tokens: int | None = None, budget_key: str | None = None,
              task: str | None = None, choices: int = 1) -> Decision:
        """Choose a model for `prompt` (a string or chat messages) under the dial `cost_weight`; `task` names
        the kind of request it is, one of the router's `tasks` (None: routed on the prompt alone).

        The decision waits for `feedback(decision.route_id, score)` until it expires. With a budget, the
        decision holds its model's worst-case cost under `budget_key` (a user or tenant; None: the global
        account only) until `settle(route_id, cost)` or `release(route_id)`; complete/stream do both themselves.
        The worst case and the predicted cost count `choices` answers (OpenAI's `n`) of up to `max_tokens` each.
        `tools`: True when the request carries tools (only models with `supports_tools` are eligible), or the tool
        specs themselves, whose JSON then counts towards the prompt's tokens (the request sends them).
        Messages holding an image (an `image_url` or `image` content part) go only to models with `supports_vision`.
        """
        dial = None if cost_weight is None else check_cost_weight(cost_weight)
        query, full_text = check_prompt(prompt, self.limits.max_prompt_chars)
        return self._decide(self.context.vector(query, task), full_text, has_image(messages_of(prompt)), dial,
                            models, tools, max_tokens, budget_key, task, choices)

    async def aroute(self, prompt: str | Messages, cost_weight: float | None = None,
                     models: Sequence[str] | None = None, tools: bool | Sequence[Any] = False,
                     max_tokens: int | None = None,
                     budget_key: str | None = None, task: str | None = None, choices: int = 1) -> Decision:
        """Async `route`: the prompt is encoded off the event loop; the choice itself is the same."""
        dial = None if cost_weight is None else check_cost_weight(cost_weight)
        query, full_text = check_prompt(prompt, self.limits.max_prompt_chars)
        return self._decide(await self.context.avector(query, task), full_text, has_image(messages_of(prompt)),
                            dial, models, tools, max_tokens, budget_key, task, choices)

    def _decide(self, vector: np.ndarray, full_text: str, images: bool, requested: float | None,
                models: Sequence[str] | None, tools: bool | Sequence[Any], max_tokens: int | None,
                budget_key: str | None, task: str | None, choices: int) -> Decision:
        check_tokens(max_tokens, "max_tokens")
        check_integer(choices, "n (choices)", 1, 128)
        check_budget_key(budget_key)
        prompt_tokens = estimate_tokens(full_text)
        if not isinstance(tools, bool):  # the specs: sent with the prompt, and paid for as prompt tokens
            prompt_tokens += estimate_tokens(json.dumps(list(tools), default=str)) if tools else 0
            tools = bool(tools)
        with self.lock:
            target = self.spend_target if requested is None else None  # a request's own dial is not counted
            dial = self.cost_weight if requested is None else requested
            self.ledger.expire()
            self.gate.expire(self.feedback_settings.pending_ttl)
            allowed = eligible(self.models, prompt_tokens, models, tools, max_tokens, images)
            ready = self.caller.cooldowns.available(allowed)
            candidates = ready
            try:
                names, worst, cost, probs, quality = self._pick(vector, ready, prompt_tokens, max_tokens, choices,
                                                                budget_key, dial)
            except NoEligibleModelError:  # a policy that needs a model sitting out (fixed): it is tried, and falls
                if ready == allowed:      # back on failure as without a cooldown
                    raise
                candidates = allowed
                names, worst, cost, probs, quality = self._pick(vector, allowed, prompt_tokens, max_tokens,
                                                                choices, budget_key, dial)
            while True:
                choice = int(self.rng.choice(len(names), p=probs))
                decision = Decision.made(names, choice, probs, quality, cost, dial, task,
                                         unaffordable=[m for m in candidates if m not in names])
                try:
                    self.gate.hold(decision, worst, budget_key, prompt_tokens, choices)
                    break
                except BudgetExceededError:  # a shared ledger's room went to another replica since it admitted
                    rest = [m for m in names if m != decision.model]
                    if not rest:
                        raise
                    names, worst, cost, probs, quality = self._pick(vector, rest, prompt_tokens, max_tokens, choices,
                                                                    budget_key, dial)
            if target is not None:
                target.record(float(cost[choice]))
            decision = self.ledger.open(decision, vector)
        self.caller.record(decision, full_text if self.log_settings.store_prompts else None,
                           vector if self.log_settings.store_vectors else None)
        self._maybe_sync()
        return decision

    def _pick(self, vector: np.ndarray, names: list[str], prompt_tokens: int, max_tokens: int | None,
              choices: int, budget_key: str | None, dial: float
              ) -> tuple[list[str], dict[str, float], np.ndarray, np.ndarray, np.ndarray]:
        """(models admitted by the budget, their worst-case costs, predicted costs of the `choices` answers, choice
        probabilities, quality)."""
        names, worst = self.gate.admit(names, prompt_tokens, max_tokens, choices, budget_key,
                                       lambda arms, cost: self._choose(vector, arms, cost, dial)[1])
        cost = self.costs.predict(names, prompt_tokens, max_tokens, choices)  # the learned cost model's expectation
        probs, quality = self._choose(vector, names, normalised_costs(cost), dial)
        return names, worst, cost, probs, quality

    def _choose(self, vector: np.ndarray, names: list[str], cost: np.ndarray,
                dial: float) -> tuple[np.ndarray, np.ndarray]:
        return self.policy.probabilities(vector, [self.policy.index(m) for m in names], cost, dial)

    # -- learning -------------------------------------------------------------------------------------------
    def feedback(self, route_id: str, score: float, token: str | None = None, source: str | None = None) -> None:
        """Reward the model chosen for `route_id` with `score` in [0, 1] (1 = best answer).

        With a feedback_secret, `token` must be the decision's feedback_token; with a source_limit, `source`
        names who gave the feedback. Once this returns, the feedback is acknowledged: it is in the local state
        and, with a state_store, queued until a sync merges it.
        """
        score = check_score(score)
        self.ledger.reward(route_id, score, token, source)
        self.caller.logged(lambda decisions: decisions.record_feedback(route_id, score))
        self._maybe_sync()

    def observe(self, prompt: str | Messages, model: str, score: float, task: str | None = None) -> None:
        """Learn an outcome seen outside routing (offline data, a full-information warm start)."""
        score = check_score(score)
        if model not in self.models:
            raise ConfigError(f"unknown model {model!r}; known: {list(self.models)}")
        self.learn([Outcome(self.context.vector(check_prompt(prompt, self.limits.max_prompt_chars)[0], task),
                            model, score)])

    def learn(self, outcomes: Sequence[Outcome]) -> None:
        """Teach the policy `outcomes` (e.g. a prior: see `bandit_router.priors`), under the router's lock."""
        with self.lock:
            self.policy.learn(outcomes)
        self._maybe_sync()

    def restore_pending(self) -> int:
        """Wait again for feedback on the decisions this router's decision log holds from before a restart or
        `load`, so that `feedback` (with their feedback tokens, if signed) applies to them as if the router had not
        restarted; how many now wait. Call it once, after loading and before routing.

        Restored: decisions whose call was served (a `route` alone once `settle` reported its cost), not rated,
        made within pending_ttl, logged with a vector of the router's dimension for a model it still has; not
        those already waiting or closed here (as far as the last max_pending closed are remembered). They fill
        the room max_pending leaves, newest first, and push out no waiting decision. Their vectors are the
        logged float32 copies (exact unless task hints widened them). A decision pushed out by max_pending
        before the restart is restored too (with an expired_reward it has learned that reward already).

        Restore only from a log this router alone writes: replicas sharing a log file would each restore the
        others' decisions, so a rating could reach two of them, or one could learn an expired_reward for a
        decision rated by another. ConfigError without a log, without store_vectors, or with a log that cannot
        list its rows.
        """
        if self.log is None:
            raise ConfigError("restore_pending needs a decision log: create or load the router with "
                              "log=LogSettings(path, store_vectors=True)")
        if not self.log_settings.store_vectors:
            raise ConfigError("restore_pending needs a decision log that stores prompt vectors: "
                              "log=LogSettings(path, store_vectors=True)")
        since = time.time() - self.feedback_settings.pending_ttl
        try:
            rows = list(self.log.served_unrated(since))
        except NotImplementedError:
            raise ConfigError(f"restore_pending needs a decision log that can list its rows; "
                              f"{type(self.log).__name__} cannot") from None
        with self.lock:
            usable = [(row["route_id"], Pending.logged(row)) for row in rows if row["model"] in self.models
                      and row["vector"] is not None and np.shape(row["vector"]) == (self.dim,)]
        if len(usable) < len(rows):
            log.warning("restore_pending: %d served, unrated decision(s) not restored: logged without a vector, with "
                        "a vector of another dimension, or for a model no longer in the router",
                        len(rows) - len(usable))
        return self.ledger.restore(usable)

    def pending(self, route_id: str) -> bool:
        """Whether `route_id` is still waiting for feedback."""
        return self.ledger.is_waiting(route_id)

    def sync(self) -> None:
        """Push unsynced updates to the state_store, serve the merged totals (StoreUnavailableError: kept queued)."""
        if self.replica is None:
            raise ConfigError("sync needs a router created with a state_store")
        self.replica.sync(self.lock)

    def _maybe_sync(self) -> None:
        if self.replica is not None:
            self.replica.maybe_sync(self.lock)

    # -- budget ---------------------------------------------------------------------------------------------
    def settle(self, route_id: str, cost: float | None = None) -> None:
        """Charge the real cost of `route_id`'s call (the models' cost unit: USD for priced cards) in place of its
        hold (None: the hold, for a call whose usage never arrived), teach it to the cost model and log it beside
        the predicted cost; complete/stream settle by themselves; expiry charges the hold. A route id that is not
        waiting (settled or released already, expired, or another router's) is logged as a warning."""
        if not self.gate.settle(route_id, cost):
            log.warning("settle(%r): this route id is not waiting to be settled (settled or released already, "
                        "its hold expired after pending_ttl, or routed by another router); nothing was "
                        "charged to the budget or logged", route_id)
        elif cost is not None:
            self.caller.logged(lambda decisions: decisions.record_call(route_id, cost))

    def release(self, route_id: str) -> None:
        """Drop the budget hold of `route_id` without charge (its call was not made); a route id that is not
        waiting is logged as a warning, as in `settle`."""
        if not self.gate.release(route_id):
            log.warning("release(%r): this route id is not waiting to be settled (settled or released already, "
                        "expired, or routed by another router); nothing was released", route_id)

    # -- calling models -------------------------------------------------------------------------------------
    def complete(self, prompt: str | Messages, cost_weight: float | None = None, models: Sequence[str] | None = None,
                 **kwargs: Any) -> Completion:
        """Route, then call the chosen model with litellm.completion (kwargs pass through, e.g. temperature,
        except `task` and `budget_key`, which go to `route`; ConfigError, before routing, for one not in
        `CALL_KWARGS` or out of its range: see `check_call_kwargs`).

        On a provider failure the next-best eligible model is tried, up to `max_attempts` models.
        """
        check_call_kwargs(kwargs)
        messages = messages_of(prompt)
        decision = self.route(messages, cost_weight, models, **route_kwargs(kwargs))
        return self.caller.complete(messages, decision, kwargs)

    async def acomplete(self, prompt: str | Messages, cost_weight: float | None = None,
                        models: Sequence[str] | None = None, **kwargs: Any) -> Completion:
        """Async `complete`, through litellm.acompletion."""
        check_call_kwargs(kwargs)
        messages = messages_of(prompt)
        decision = await self.aroute(messages, cost_weight, models, **route_kwargs(kwargs))
        return await self.caller.acomplete(messages, decision, kwargs)

    def stream(self, prompt: str | Messages, cost_weight: float | None = None, models: Sequence[str] | None = None,
               **kwargs: Any) -> RoutedStream:
        """Route, then stream the chosen model's answer; a model that fails before its first chunk is replaced
        (kwargs as in `complete`)."""
        check_call_kwargs(kwargs)
        messages = messages_of(prompt)
        return self.caller.stream(messages, self.route(messages, cost_weight, models, **route_kwargs(kwargs)),
                                  kwargs)

    def astream(self, prompt: str | Messages, cost_weight: float | None = None, models: Sequence[str] | None = None,
                **kwargs: Any) -> AsyncRoutedStream:
        """Async `stream`."""
        check_call_kwargs(kwargs)
        messages = messages_of(prompt)
        return self.caller.astream(messages, self.route(messages, cost_weight, models, **route_kwargs(kwargs)),
                                   kwargs)

    # -- persistence ----------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write config and learned state to one safetensors file, atomically. A router sharing its state syncs
        first, so that the file's own part holds no rating the store counts too (a store out of reach: the file
        keeps the unsynced ratings, with a warning, and loaded beside the store after this router pushed them,
        they count twice)."""
        self._sync_first("save", "saved as this router's own")
        with self.lock:
            data = encode_router(self)
        write_atomic(path, data)

    def _sync_first(self, what: str, otherwise: str) -> None:
        """Sync before `what`, which would otherwise lose or double the unsynced ratings; a warning saying what
        becomes of them (`otherwise`) if the store cannot be reached."""
        if self.replica is None:
            return
        try:
            self.replica.sync(self.lock)
        except StoreUnavailableError as error:
            log.warning("%s: the state store is out of reach, so the ratings not yet synced are %s: %s", what,
                        otherwise, error)

    @classmethod
    def load(cls, path: str | Path, encoder: Encoder | Callable | str | None = None,
             api_keys: Mapping[str, str] | None = None, credentials: Mapping[str, Mapping[str, Any]] | None = None,
             api_bases: Mapping[str, str] | None = None, policy_settings: Mapping[str, Any] | None = None,
             **settings: Any) -> "Router":
        """Rebuild a saved router. API keys and credentials are never saved: pass them per model name in `api_keys`
        and `credentials`. A model saved with an endpoint (api_base) needs it confirmed in `api_bases` (the
        error names it): a file must not choose where requests and keys go. `policy_settings` change the saved
        policy's settings that its learned state does not depend on (e.g. {"exploration": 0.0}; ConfigError for
        one it does, such as `regularization`). `settings`
        are the operational arguments a file never sets (log=..., feedback=...); `seed=` draws afresh from that
        seed instead of going on from the saved random state."""
        return load_router(cls, path, encoder=encoder, api_keys=api_keys, credentials=credentials,
                           api_bases=api_bases, policy_settings=policy_settings, **settings)

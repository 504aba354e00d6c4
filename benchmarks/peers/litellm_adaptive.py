"""LiteLLM's adaptive router (``litellm.router_strategy.adaptive_router``, beta) as an offline peer.

Decisions
    A real ``litellm.Router`` is built with one deployment per model in ``model_costs`` (provider
    ``openai/``, ``mock_response`` set and ``api_base`` on a closed local port, so nothing can reach the
    network; no completion is ever made) plus one ``auto_router/adaptive_router`` marker deployment whose
    ``adaptive_router_config`` lists those models and the quality/cost weights. The Router itself builds the
    ``AdaptiveRouter`` (``Router.init_adaptive_router_deployment``), no Redis, no DB, no proxy.
    ``choose`` sends ``[{"role": "user", "content": prompt}]`` through ``Router.async_pre_routing_hook``,
    which dispatches to ``AdaptiveRouter.async_pre_routing_hook`` -> ``classify_prompt`` (its regex
    request-type classifier) -> ``pick_model`` -> ``bandit.pick_best`` (one Thompson draw per model, score =
    q*sample + c*normalized_cost, argmax). The returned ``PreRoutingHookResponse.model`` is the choice.

Prices
    Each model's ``input_cost_per_token`` in ``model_info`` (where the README puts it) is set to the model's
    mean cost per query on the data set; ``init_adaptive_router_deployment`` copies it into
    ``AdaptiveRouter.model_to_cost``. Only relative prices matter: ``bandit.normalized_cost`` min-max scales
    them to [0, 1] (1 = cheapest). No ``adaptive_router_preferences`` are declared by default, so every
    cell starts at LiteLLM's default tier-2 prior Beta(5, 5) (``_default_prefs`` + ``initial_cell``).

Rewards
    LiteLLM's public learning path (``AdaptiveRouterPostCallHook`` -> ``AdaptiveRouter.record_turn``) only
    learns from regex signals in multi-turn conversations (>= 4 messages: satisfaction -> +1 alpha;
    misalignment/stagnation/disengagement/failure -> +1 beta; loop -> +0.5 beta); it has no way to accept an
    explicit outcome. ``learn`` therefore does what ``record_turn``'s final loop does with its computed
    ``(d_alpha, d_beta)``: ``router._cells[(request_type, model)] = bandit.apply_delta(cell, d_alpha, d_beta)``
    with ``d_alpha = score`` and ``d_beta = 1 - score`` (a 0/1 score is exactly one satisfaction or one
    failure signal). ``request_type`` is the one the hook classified the prompt as (the
    ``routing_decision["request_type"]`` of the choice; ``classify_prompt`` if ``choose`` was not called
    first), mirroring ``record_turn`` attributing to the type of the turn. ``apply_delta`` keeps LiteLLM's
    hard ``SAMPLE_CAP`` (alpha + beta <= 200): once a cell holds ~190 observations further updates are
    silently dropped, as in production. The DB write queue (``queue.add_state_delta``) is skipped: it only
    feeds Postgres, which the in-memory cells do not read back.

Randomness
    ``bandit.thompson_sample`` is called without an rng, so it draws from the module-level ``random``
    (stdlib, global Mersenne Twister; no numpy anywhere in the package). During each ``choose`` the name
    ``random`` in ``litellm.router_strategy.adaptive_router.bandit`` is pointed at this peer's own
    ``random.Random(seed)`` and restored afterwards, so runs are reproducible per seed and the global
    ``random`` state is never touched.

Global side effects of building a real Router (unavoidable, harmless here): it registers its deployments
in ``litellm.model_cost`` and a ``AdaptiveRouterPostCallHook`` in LiteLLM's callbacks; the latter is
removed again because outcomes arrive through ``learn``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Mapping
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402
from litellm.router_strategy.adaptive_router import bandit as _bandit  # noqa: E402
from litellm.router_strategy.adaptive_router.adaptive_router import AdaptiveRouter  # noqa: E402
from litellm.router_strategy.adaptive_router.classifier import classify_prompt  # noqa: E402
from litellm.router_strategy.adaptive_router.hooks import AdaptiveRouterPostCallHook  # noqa: E402
from litellm.types.router import RequestType  # noqa: E402

ROUTER_NAME = "bandit-router-litellm-adaptive-peer"


class LiteLLMAdaptivePeer:
    """Online router peer: ``choose(prompt) -> model``, then ``learn(prompt, model, score)``.

    Args:
        model_costs: model name -> mean cost per query on the data set (LiteLLM's price input).
        quality_weight, cost_weight: LiteLLM's ``weights.quality`` / ``weights.cost`` (must sum to 1).
        seed: seed of the private ``random.Random`` used for Thompson sampling.
        preferences: optional model -> ``{"quality_tier": 1..3, "strengths": [...]}`` cold-start priors
            (LiteLLM's ``adaptive_router_preferences``); default none = tier 2 for all.
    """

    def __init__(
        self,
        model_costs: Mapping[str, float],
        quality_weight: float,
        cost_weight: float,
        seed: int,
        preferences: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.models = list(model_costs)
        model_list: list[dict[str, Any]] = []
        for name, cost in model_costs.items():
            info: dict[str, Any] = {"input_cost_per_token": float(cost)}
            if preferences and name in preferences:
                info["adaptive_router_preferences"] = dict(preferences[name])
            model_list.append({
                "model_name": name,
                "litellm_params": {"model": f"openai/{name}", "api_key": "offline",
                                   "api_base": "http://127.0.0.1:9", "mock_response": "offline"},
                "model_info": info,
            })
        model_list.append({
            "model_name": ROUTER_NAME,
            "litellm_params": {
                "model": "auto_router/adaptive_router",
                "adaptive_router_default_model": self.models[0],
                "adaptive_router_config": {
                    "available_models": self.models,
                    "weights": {"quality": quality_weight, "cost": cost_weight},
                },
            },
        })
        quiet = logging.getLogger("LiteLLM")  # silence one "custom pricing" warning per model
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            self.router = litellm.Router(model_list=model_list)
        finally:
            quiet.setLevel(level)
        self.adaptive: AdaptiveRouter = self.router.adaptive_routers[ROUTER_NAME][0].strategy
        for cb in litellm.logging_callback_manager.get_custom_loggers_for_type(AdaptiveRouterPostCallHook):
            if cb.adaptive_router is self.adaptive:
                litellm.logging_callback_manager.remove_callback_from_all_lists(cb)
        self._rng = random.Random(seed)
        self._loop = asyncio.new_event_loop()
        self._request_types: dict[str, RequestType] = {}

    def choose(self, prompt: str) -> str:
        """Route ``prompt`` through ``Router.async_pre_routing_hook``; return the chosen model name.

        Synchronous (runs the hook on a private event loop): do not call from inside a running loop.
        """
        messages = [{"role": "user", "content": prompt}]
        saved = _bandit.random
        _bandit.random = self._rng  # type: ignore[assignment]  # thompson_sample's default rng
        try:
            resp = self._loop.run_until_complete(
                self.router.async_pre_routing_hook(model=ROUTER_NAME, request_kwargs={}, messages=messages)
            )
        finally:
            _bandit.random = saved
        assert resp is not None and resp.routing_decision is not None
        self._request_types[prompt] = RequestType(resp.routing_decision["request_type"])
        return resp.model

    def request_type(self, prompt: str) -> RequestType:
        """LiteLLM's request type for ``prompt`` (as classified by the last ``choose``)."""
        rt = self._request_types.get(prompt)
        return rt if rt is not None else classify_prompt(prompt.strip())

    def learn(self, prompt: str, model: str, score: float) -> None:
        """Credit outcome ``score`` in [0, 1] to the (request type, model) Beta cell via ``apply_delta``."""
        rt = self._request_types.pop(prompt, None) or self.request_type(prompt)
        key = (rt, model)
        s = min(1.0, max(0.0, float(score)))
        self.adaptive._cells[key] = _bandit.apply_delta(self.adaptive._cells[key], s, 1.0 - s)

    def close(self) -> None:
        """Close the private event loop."""
        self._loop.close()

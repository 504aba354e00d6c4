"""Images in a request: Router.route/aroute/complete make only models whose card has supports_vision eligible."""

from __future__ import annotations

import asyncio

import pytest

from bandit_router import AllModelsFailedError, Model, Router
from bandit_router.errors import NoEligibleModelError
from bandit_router.testing import FakeLLMServer, ModelBehavior

from .conftest import hashed_bow

SEEING, BLIND, ALSO_BLIND = "openai/seeing", "openai/blind", "openai/also-blind"
PICTURE = [{"role": "user", "content": [{"type": "text", "text": "What is in this picture?"},
                                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}]}]


def card(name: str, vision: bool, base_url: str | None = None) -> Model:
    """A priced card; the blind ones are cheaper, so a router on cost alone would pick them."""
    price = 1e-5 if vision else 1e-7
    return Model(name, input_cost_per_token=price, output_cost_per_token=price, supports_vision=vision,
                 api_base=base_url, api_key="sk-test" if base_url else None)


def router_of(*cards: Model) -> Router:
    return Router(list(cards), policy="random", encoder=hashed_bow, seed=0)


def test_an_image_makes_only_vision_models_eligible():
    router = router_of(card(SEEING, True), card(BLIND, False), card(ALSO_BLIND, False))
    assert set(router.route(PICTURE).probabilities) == {SEEING}
    assert {router.route(PICTURE, cost_weight=1.0).model for _ in range(10)} == {SEEING}
    assert set(asyncio.run(router.aroute(PICTURE)).probabilities) == {SEEING}
    image_part = [{"role": "user", "content": ({"type": "image", "image": "https://x/y.png"},)}]  # a tuple of parts
    assert set(router.route(image_part).probabilities) == {SEEING}


def test_text_prompts_leave_every_model_eligible():
    router = router_of(card(SEEING, True), card(BLIND, False))
    text_parts = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    for prompt in ("hi", [{"role": "user", "content": "hi"}], text_parts):
        assert set(router.route(prompt).probabilities) == {SEEING, BLIND}


def test_an_image_no_allowed_model_accepts_is_refused_naming_supports_vision():
    router = router_of(card(SEEING, True), card(BLIND, False), card(ALSO_BLIND, False))
    with pytest.raises(NoEligibleModelError, match=r"holds an image and no allowed model accepts images "
                                                   r"\(allowed=\['openai/blind'\]\); give a card supports_vision"):
        router.route(PICTURE, models=[BLIND])
    blind_only = router_of(card(BLIND, False), card(ALSO_BLIND, False))
    with pytest.raises(NoEligibleModelError, match=r"\(allowed=all\); give a card supports_vision=True"):
        blind_only.route(PICTURE)
    with pytest.raises(NoEligibleModelError, match="supports_vision"):
        asyncio.run(blind_only.acomplete(PICTURE))


def test_complete_sends_an_image_only_to_vision_models_and_never_falls_back_to_a_blind_one():
    with FakeLLMServer({"seeing": ModelBehavior(), "blind": ModelBehavior()}) as server:
        router = router_of(card(SEEING, True, server.base_url), card(BLIND, False, server.base_url))
        assert {router.complete(PICTURE, cost_weight=1.0).decision.model for _ in range(4)} == {SEEING}
        server.set_behavior("seeing", fail_status=500)
        with pytest.raises(AllModelsFailedError):
            router.complete(PICTURE, num_retries=0)
        assert {r.model for r in server.requests} == {"seeing"}

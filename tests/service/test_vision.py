"""Images sent to the service: only models whose card has supports_vision take them; none -> 400 no_eligible_model."""

from __future__ import annotations

from typing import Any

import httpx

from bandit_router.testing import FakeLLMServer

from .conftest import CHEAP, DEAR, KEYS, config_dict, start_service

AUTH = {"Authorization": f"Bearer {KEYS['team-a']}"}
PICTURE = {"model": "router", "messages": [{"role": "user", "content": [
    {"type": "text", "text": "What is in this picture?"},
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]}


def models(base_url: str, vision: dict[str, bool]) -> list[dict[str, Any]]:
    """The test config's two models with `supports_vision` set per name."""
    return [{**m, "supports_vision": vision[m["name"]]} for m in config_dict(base_url)["models"]]


def test_an_image_no_model_accepts_is_a_400_no_eligible_model(upstream: FakeLLMServer):
    with start_service(upstream.base_url, models=models(upstream.base_url, {CHEAP: False, DEAR: False})) as live:
        response = httpx.post(f"{live.url}/v1/chat/completions", json=PICTURE, headers=AUTH, timeout=30)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "no_eligible_model" and "supports_vision" in error["message"]
    assert upstream.requests == []


def test_an_image_goes_to_the_one_vision_model(upstream: FakeLLMServer):
    blind_cheap = models(upstream.base_url, {CHEAP: False, DEAR: True})
    with start_service(upstream.base_url, models=blind_cheap, cost_weight=1.0) as live:  # on cost alone: CHEAP
        answers = [httpx.post(f"{live.url}/v1/chat/completions", json=PICTURE, headers=AUTH, timeout=30)
                   for _ in range(4)]
        text = httpx.post(f"{live.url}/v1/chat/completions", headers=AUTH, timeout=30,
                          json={"model": "router", "messages": [{"role": "user", "content": "hi"}]})
    assert [a.status_code for a in answers] == [200] * 4 and text.status_code == 200
    assert {a.json()["model"] for a in answers} == {DEAR}
    assert {r.model for r in upstream.requests[:4]} == {"model-b"}

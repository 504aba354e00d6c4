"""Ratings through /v1/feedback, tenant isolation, signed tokens, per-tenant quotas and budgets, metrics, and
what the service keeps out of its logs."""

from __future__ import annotations

import io
import json
import logging
import tomllib

import httpx
import openai
import pytest

from bandit_router.cli import main
from bandit_router.service import Service, hash_key, parse_config

from .conftest import CHEAP, DEAR, KEYS, UPSTREAM_KEY, LiveServer, config_dict, metric, start_service


def auth(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[tenant]}"}


def ask(served: LiveServer, tenant: str = "team-a", content: str = "rate me", **body) -> dict:
    response = httpx.post(served.url + "/v1/chat/completions", headers=auth(tenant),
                          json={"model": "router", "messages": [{"role": "user", "content": content}], **body})
    assert response.status_code == 200, response.text
    return response.json()


def rate(served: LiveServer, route_id: str, score, tenant: str = "team-a", **body) -> httpx.Response:
    return httpx.post(served.url + "/v1/feedback", headers=auth(tenant), json={"route_id": route_id, "score": score,
                                                                              **body})


def test_feedback_teaches_the_router(served: LiveServer) -> None:
    """Rating the cheap model 1 and the dear one 0 makes the router prefer the cheap one at dial 0."""
    for step in range(40):
        answer = ask(served, content=f"question {step}")
        assert rate(served, answer["id"], 1.0 if answer["model"] == CHEAP else 0.0).json() == {
            "route_id": answer["id"], "applied": True, "persisted": False}
    chosen = [ask(served, content=f"question {step}")["model"] for step in range(20)]
    assert chosen.count(CHEAP) >= 18
    text = httpx.get(served.url + "/metrics").text
    assert metric(text, "bandit_router_feedback_applied_total") == 40
    assert metric(text, "bandit_router_pending_decisions") == 20


def test_each_rating_is_applied_once(served: LiveServer) -> None:
    route_id = ask(served)["id"]
    assert rate(served, route_id, 0.5).status_code == 200
    again = rate(served, route_id, 0.5)
    assert again.status_code == 409 and again.json()["error"]["code"] == "duplicate_feedback"
    text = httpx.get(served.url + "/metrics").text
    assert metric(text, "bandit_router_feedback_received_total") == 2
    assert metric(text, "bandit_router_feedback_applied_total") == 1
    assert metric(text, "bandit_router_feedback_rejected_total", reason="duplicate_feedback") == 1


@pytest.mark.parametrize("body, param", [({"score": 2}, "score"), ({"score": "good"}, "score"), ({}, "score"),
                                         ({"score": 1, "extra": 1}, "extra")])
def test_invalid_ratings(served: LiveServer, body, param) -> None:
    route_id = ask(served)["id"]
    response = httpx.post(served.url + "/v1/feedback", headers=auth("team-a"), json={"route_id": route_id, **body})
    assert response.status_code == 400 and "score" in response.text or param == "extra"
    assert response.json()["error"]["param"] == param
    assert rate(served, route_id, 1).status_code == 200  # the route still waits for a valid rating


def test_a_tenant_rates_only_its_own_routes(served: LiveServer) -> None:
    route_id = ask(served, tenant="team-a")["id"]
    stolen = rate(served, route_id, 0.0, tenant="team-b")
    assert stolen.status_code == 404 and stolen.json()["error"]["code"] == "unknown_route"
    assert rate(served, route_id, 1.0, tenant="team-a").status_code == 200
    assert rate(served, "0" * 32, 1.0).status_code == 404
    unauthenticated = httpx.post(served.url + "/v1/feedback", json={"route_id": route_id, "score": 1})
    assert unauthenticated.status_code == 401 and unauthenticated.json()["error"]["code"] == "invalid_api_key"


def test_signed_feedback_tokens(upstream) -> None:
    config = config_dict(upstream.base_url, feedback={"secret_env": "FEEDBACK_SECRET"})
    env = {"UPSTREAM_KEY": UPSTREAM_KEY, "FEEDBACK_SECRET": "a-long-shared-secret-for-tests"}
    with LiveServer(Service(parse_config(config, env=env))) as served:
        answer = ask(served)
        token = answer["bandit_router"]["feedback_token"]
        assert token and rate(served, answer["id"], 1.0).status_code == 403  # no token
        forged = rate(served, answer["id"], 1.0, feedback_token=token[:-2] + "xx")
        assert forged.status_code == 403 and forged.json()["error"]["code"] == "invalid_feedback_token"
        assert rate(served, answer["id"], 1.0, feedback_token=token).status_code == 200


def test_chat_openai_rates_by_the_route_headers_under_a_feedback_secret(upstream) -> None:
    """LangChain's ChatOpenAI keeps no `bandit_router` body field: the route id and feedback token also come as
    response headers, which it shows with include_response_headers=True (streams too)."""
    from langchain_openai import ChatOpenAI

    config = config_dict(upstream.base_url, feedback={"secret_env": "FEEDBACK_SECRET"})
    env = {"UPSTREAM_KEY": UPSTREAM_KEY, "FEEDBACK_SECRET": "a-long-shared-secret-for-tests"}
    with LiveServer(Service(parse_config(config, env=env))) as served:
        chat = ChatOpenAI(base_url=served.url + "/v1", api_key=KEYS["team-a"], model="router", max_retries=0,
                          include_response_headers=True)
        for reply in (chat.invoke("rate me"), next(iter(chat.stream("rate my stream")))):
            headers = reply.response_metadata["headers"]
            route_id, token = headers["x-bandit-router-route-id"], headers["x-bandit-router-feedback-token"]
            assert headers["x-bandit-router-model"] in (CHEAP, DEAR)
            assert rate(served, route_id, 1.0, feedback_token=token).status_code == 200


def test_feedback_quota_per_tenant(upstream) -> None:
    with start_service(upstream.base_url, feedback={"limit_per_tenant": 2, "window": 3600}) as served:
        for _ in range(2):
            assert rate(served, ask(served)["id"], 1.0).status_code == 200
        refused = rate(served, ask(served)["id"], 1.0)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "feedback_limit"
        assert rate(served, ask(served, tenant="team-b")["id"], 1.0, tenant="team-b").status_code == 200


def test_budget_per_tenant(upstream) -> None:
    """team-a's budget key runs out while team-b, under its own key, is still served."""
    with start_service(upstream.base_url, budget={"limit": 1.0, "key_limit": 0.031},
                       expected_output_tokens=100) as served:
        openai_a = openai.OpenAI(base_url=served.url + "/v1", api_key=KEYS["team-a"], max_retries=0)
        with pytest.raises(openai.RateLimitError, match="key 'team-a'"):
            for _ in range(200):
                openai_a.chat.completions.create(model="router", messages=[{"role": "user", "content": "spend"}],
                                                  max_tokens=1000, extra_body={"models": [DEAR]})
        assert 0.0009 <= served.service.router.budget.spent("team-a") <= 0.031
        assert ask(served, tenant="team-b", max_tokens=1000, models=[DEAR])["model"] == DEAR


def test_metrics_exposition(served: LiveServer, upstream) -> None:
    for content in ("one", "two", "three"):
        ask(served, content=content)
    list(openai.OpenAI(base_url=served.url + "/v1", api_key=KEYS["team-a"]).chat.completions.create(
        model="router", messages=[{"role": "user", "content": "four"}], stream=True))
    upstream.set_behavior("model-b", fail_status=500)
    failed = httpx.post(served.url + "/v1/chat/completions", headers=auth("team-a"), json={
        "model": "router", "messages": [{"role": "user", "content": "x"}], "models": [DEAR]})
    assert failed.status_code == 502
    response = httpx.get(served.url + "/metrics")
    text = response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    decisions = metric(text, "bandit_router_decisions_total", model=CHEAP) + \
        metric(text, "bandit_router_decisions_total", model=DEAR)
    assert decisions == 4 and metric(text, "bandit_router_failures_total", model=DEAR) == 1
    assert metric(text, "bandit_router_requests_total", status="200") == 4
    assert metric(text, "bandit_router_requests_total", status="502") == 1
    assert metric(text, "bandit_router_routing_seconds_count") == 4
    assert sum(metric(text, "bandit_router_upstream_seconds_bucket", model=m, le="+Inf") for m in (CHEAP, DEAR)) == 4
    spend = sum(metric(text, "bandit_router_spend_usd_total", model=m) for m in (CHEAP, DEAR))
    assert spend == pytest.approx(served.service.router.budget.spent()) and spend > 0
    assert metric(text, "bandit_router_budget_spent_usd") == pytest.approx(spend)
    assert "# TYPE bandit_router_upstream_seconds histogram" in text


def test_no_key_or_prompt_in_logs(served: LiveServer, upstream, caplog: pytest.LogCaptureFixture) -> None:
    secret_prompt = "my-secret-prompt-words"
    caplog.set_level(logging.DEBUG)
    upstream.set_behavior("model-a", fail_status=500)
    upstream.set_behavior("model-b", fail_status=500)
    response = httpx.post(served.url + "/v1/chat/completions", headers=auth("team-a"),
                          json={"model": "router", "messages": [{"role": "user", "content": secret_prompt}]})
    assert response.status_code == 502 and response.json()["error"]["code"] == "upstream_failed"
    httpx.post(served.url + "/v1/chat/completions", headers={"Authorization": "Bearer sk-bad-key-0123456789"},
               json={"model": "router", "messages": [{"role": "user", "content": secret_prompt}]})
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "chat completion for tenant team-a failed: upstream_failed" in logged
    for secret in (secret_prompt, *KEYS.values(), UPSTREAM_KEY, "sk-bad-key-0123456789"):
        assert secret not in logged


def test_hash_key_entries() -> None:
    entry = hash_key("sk-some-key-0123456789")
    assert len(entry["salt"]) == 32 and len(entry["key_sha256"]) == 64
    assert hash_key("sk-some-key-0123456789", entry["salt"]) == entry
    assert "sk-some-key" not in str(entry)


def test_the_hash_key_command_prints_a_tenants_block_for_toml_and_json_configs(monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("sk-some-key-0123456789\n"))
    assert main(["serve", "--hash-key", "team-a"]) == 0
    printed = capsys.readouterr().out
    [tenant] = tomllib.loads(printed)["tenants"]
    assert tenant["name"] == "team-a" and hash_key("sk-some-key-0123456789", tenant["salt"]) == {
        k: tenant[k] for k in ("salt", "key_sha256")}
    assert json.loads(printed.split("# in a JSON config: ")[1]) == tenant
    assert "sk-some-key" not in printed
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["serve", "--hash-key", "team-a"]) == 2
    assert "at least 16 characters" in capsys.readouterr().err

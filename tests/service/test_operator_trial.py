"""What an operator trial of the service found: one request with very many messages held the event loop for
seconds, /healthz said ok with the state store down, cut streams were missing from the spend metric, a rating
applied while the store was down was answered 503 and counted as rejected, two tenants could share a key, the
SDKs re-ran a whole fallback chain on a 502, no request id, and the feedback quota named the core's setting."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sqlite3
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import httpx
import openai
import pytest

from bandit_router.errors import ConfigError
from bandit_router.service import parse_config
from bandit_router.service.app import HEALTH_TIMEOUT, _StoreProbe
from bandit_router.store import RedisStateStore

from .conftest import KEYS, UPSTREAM_KEY, config_dict, metric, start_service
from .test_streams_and_errors import BrokenUpstream, SlowUpstream

HEADERS = {"Authorization": f"Bearer {KEYS['team-a']}"}
ASK = {"model": "router", "messages": [{"role": "user", "content": "hello there"}]}
MODELS = ("openai/model-a", "openai/model-b")


def chat(url: str, **body: Any) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", headers=HEADERS, json={**ASK, **body}, timeout=30)


def rate(url: str, answer: httpx.Response) -> httpx.Response:
    return httpx.post(url + "/v1/feedback", headers=HEADERS, json={"route_id": answer.json()["id"], "score": 1.0},
                      timeout=30)


# -- 1. the number of messages -----------------------------------------------------------------------------------
def test_a_request_with_more_messages_than_max_messages_is_a_400_naming_the_field_and_the_limit(upstream) -> None:
    with start_service(upstream.base_url, server={"max_messages": 4}) as served:
        at_limit = chat(served.url, messages=[{"role": "user", "content": "x"}] * 4)
        too_many = chat(served.url, messages=[{"role": "user", "content": "x"}] * 5)
        parts = chat(served.url, messages=[{"role": "user", "content": [{"type": "text", "text": "x"}] * 4}])
    assert at_limit.status_code == 200, at_limit.text
    for refused in (too_many, parts):  # content parts (and tool calls) cost the SDK as much as messages
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert error["param"] == "messages" and error["code"] == "invalid_value"
        assert "server.max_messages allows 4" in error["message"]
    assert too_many.json()["error"]["message"].startswith("messages has 5 messages;")
    assert "with 4 content parts and tool calls, 5 in all" in parts.json()["error"]["message"]
    assert len(upstream.requests) == 1


def test_the_trials_hundred_thousand_messages_are_refused_at_once_by_default(upstream) -> None:
    with start_service(upstream.base_url) as served:
        assert served.service.config.max_messages == 1000
        started = time.monotonic()
        refused = chat(served.url, messages=[{"role": "user", "content": "x"}] * 100_000)
        took = time.monotonic() - started
    assert refused.status_code == 400 and "server.max_messages allows 1000" in refused.json()["error"]["message"]
    assert took < 3.0  # it held the event loop for ~15 s
    assert upstream.requests == []


@pytest.mark.parametrize("value", [0, -1, 2.5, True, "10"])
def test_an_invalid_max_messages_names_the_field(value: Any) -> None:
    with pytest.raises(ConfigError, match=r"^server\.max_messages must be an integer >= 1"):
        parse_config(config_dict("http://127.0.0.1:9/v1", server={"max_messages": value}),
                     env={"UPSTREAM_KEY": UPSTREAM_KEY})


# -- 2. /healthz and the state store -----------------------------------------------------------------------------
def test_healthz_is_503_while_redis_is_down_and_names_no_address(upstream, redis_server) -> None:
    with start_service(upstream.base_url, state={"redis": redis_server.url}) as served:
        before = httpx.get(served.url + "/healthz", timeout=10)
        redis_server.stop()
        started = time.monotonic()
        down = httpx.get(served.url + "/healthz", timeout=10)
        took = time.monotonic() - started
        redis_server.start()
        after = httpx.get(served.url + "/healthz", timeout=10)
    assert before.status_code == 200 and before.json()["status"] == "ok"
    assert down.status_code == 503 and down.json()["status"] == "unavailable"
    assert "state store is unavailable" in down.json()["reason"]
    assert str(redis_server.port) not in down.text and "127.0.0.1" not in down.text
    assert took < HEALTH_TIMEOUT + 1.0
    assert after.status_code == 200


def test_healthz_is_503_when_the_sqlite_state_file_is_gone(upstream, tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with start_service(upstream.base_url, state={"sqlite": str(path)}) as served:
        before = httpx.get(served.url + "/healthz", timeout=10)
        path.rename(tmp_path / "moved.db")
        down = httpx.get(served.url + "/healthz", timeout=10)
    assert before.status_code == 200
    assert down.status_code == 503 and str(tmp_path) not in down.text and "state.db" not in down.text


def test_healthz_does_not_hang_on_a_redis_that_never_answers() -> None:
    with socket.socket() as silent:  # accepts connections (the backlog), never answers a command
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        probe = _StoreProbe(RedisStateStore(f"redis://127.0.0.1:{silent.getsockname()[1]}/0"))

        async def twice() -> list[bool]:  # concurrent checks wait for one probe
            return list(await asyncio.gather(probe.reachable(), probe.reachable()))

        started = time.monotonic()
        results = asyncio.run(twice())
        took = time.monotonic() - started
    assert results == [False, False]
    assert took < HEALTH_TIMEOUT + 0.5


# -- 3. the spend of cut streams ---------------------------------------------------------------------------------
@pytest.fixture(params=[SlowUpstream, BrokenUpstream], ids=["client-closes", "upstream-breaks"])
def cutting(request: pytest.FixtureRequest) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), request.param)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_a_stream_cut_part_way_counts_the_worst_case_the_budget_was_charged(cutting: str) -> None:
    with start_service(cutting) as served:
        with httpx.stream("POST", served.url + "/v1/chat/completions", headers=HEADERS, timeout=30,
                          json={**ASK, "stream": True}) as response:
            next(line for line in response.iter_lines() if line.startswith("data: "))  # then the client leaves
        deadline = time.monotonic() + 15
        while True:
            text = httpx.get(served.url + "/metrics").text
            spend = sum(metric(text, "bandit_router_spend_usd_total", model=m) for m in MODELS)
            if spend > 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    charged = metric(text, "bandit_router_budget_spent_usd")
    assert charged > 0
    assert spend == pytest.approx(charged, rel=1e-6)


# -- 4. a rating applied while the store is down -----------------------------------------------------------------
def test_a_rating_applied_while_the_store_fails_is_a_200_not_persisted_and_counted_applied(
        upstream, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state.db"
    caplog.set_level(logging.WARNING, logger="bandit_router.service.app")
    with start_service(upstream.base_url, state={"sqlite": str(path)}) as served:
        answered = chat(served.url)
        assert answered.status_code == 200, answered.text
        conn = sqlite3.connect(path)  # the learned state's tables are lost: the rating's merge fails
        conn.executescript("DROP TABLE learned_state; DROP TABLE learned_batches;")
        conn.close()
        rating = rate(served.url, answered)
        again = rate(served.url, answered)
        text = httpx.get(served.url + "/metrics").text
    assert rating.status_code == 200, rating.text
    assert rating.json() == {"route_id": answered.json()["id"], "applied": True, "persisted": False}
    assert again.status_code == 409  # it was applied: a resend is a duplicate
    assert metric(text, "bandit_router_feedback_applied_total") == 1
    assert metric(text, "bandit_router_feedback_rejected_total", reason="store_unavailable") == 0
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"applied but not persisted, queued for the next sync: SQLite file {str(path)!r}" in logged


# -- 5. two tenants with one key ---------------------------------------------------------------------------------
@pytest.mark.parametrize("upper", [False, True])
def test_two_tenants_with_the_same_key_are_refused_naming_both(upper: bool) -> None:
    config = config_dict("http://127.0.0.1:9/v1")
    first, second = config["tenants"]
    second.update(salt=first["salt"].upper() if upper else first["salt"], key_sha256=first["key_sha256"])
    with pytest.raises(ConfigError, match=r"tenants\[0\] \('team-a'\) and tenants\[1\] \('team-b'\) have the same "
                                          r"salt and key_sha256"):
        parse_config(config, env={"UPSTREAM_KEY": UPSTREAM_KEY})


# -- 6. OpenAI SDK behaviour ---------------------------------------------------------------------------------------
def test_a_502_after_every_model_failed_is_not_retried_by_the_sdk(upstream) -> None:
    for model in ("model-a", "model-b"):
        upstream.set_behavior(model, fail_status=500)
    with start_service(upstream.base_url) as served:
        client = openai.OpenAI(base_url=served.url + "/v1", api_key=KEYS["team-a"])  # the default max_retries=2
        with pytest.raises(openai.InternalServerError) as raised:
            client.chat.completions.create(**ASK)
    assert raised.value.response.headers["x-should-retry"] == "false"
    assert len(upstream.requests) == 2  # each model once (it was 6: the SDK re-ran the chain twice)


def test_the_request_id_is_echoed_or_given_and_logged_with_errors(upstream,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bandit_router.service.app")
    upstream.set_behavior("model-a", fail_status=500)
    with start_service(upstream.base_url) as served:
        echoed = httpx.post(served.url + "/v1/chat/completions", headers={**HEADERS, "X-Request-Id": "my-req-1"},
                            json={**ASK, "models": ["openai/model-a"]}, timeout=30)
        given = httpx.get(served.url + "/healthz")
        replaced = httpx.get(served.url + "/v1/models", headers={**HEADERS, "X-Request-Id": "x" * 200})
        client = openai.OpenAI(base_url=served.url + "/v1", api_key=KEYS["team-a"], max_retries=0)
        raw = client.chat.completions.with_raw_response.create(**ASK, extra_body={"models": ["openai/model-b"]},
                                                                extra_headers={"X-Request-Id": "sdk-1"})
    assert echoed.status_code == 502 and echoed.headers["x-request-id"] == "my-req-1"
    assert len(given.headers["x-request-id"]) == 32
    assert len(replaced.headers["x-request-id"]) == 32
    assert raw.request_id == "sdk-1"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "chat completion for tenant team-a failed: upstream_failed" in logged and "[request my-req-1]" in logged


# -- 7. the feedback quota names the service's field --------------------------------------------------------------
def test_the_feedback_limit_names_limit_per_tenant(upstream) -> None:
    with start_service(upstream.base_url, feedback={"limit_per_tenant": 1}) as served:
        first = rate(served.url, chat(served.url))
        second = rate(served.url, chat(served.url))
    assert first.status_code == 200
    assert second.status_code == 429 and second.json()["error"]["code"] == "feedback_limit"
    message = second.json()["error"]["message"]
    assert "feedback.limit_per_tenant allows 1" in message and "source_limit" not in message
    assert json.loads(second.text)["error"]["type"] == "rate_limit_exceeded"

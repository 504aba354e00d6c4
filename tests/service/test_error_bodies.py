"""What the service's error bodies may tell a tenant: an upstream's message with the upstream keys masked but nothing
masked by other tenants' prompts in flight (which would let a tenant probe them), and a state store's failure
without its file path or database error (those go to the operator's log)."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from bandit_router.redaction import hidden, hide, redact, redact_keys
from bandit_router.service.openai_api import STORE_UNAVAILABLE, endpoints, public

from .conftest import KEYS, UPSTREAM_KEY, free_port, start_service

SECRET_LINE = "the merger closes on friday"  # a line of team-b's prompt
PROBE = {"model": "router", "messages": [{"role": "user", "content": "probe"}]}


def auth(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[tenant]}"}


class EchoingUpstream(BaseHTTPRequestHandler):
    """Holds a request with SECRET_LINE until `release` is set, then answers it; fails any other request in the
    way `mode` names, with a message that echoes SECRET_LINE and the API key it was sent."""

    mode = "refuse"
    base_url: str
    arrived: threading.Event
    release: threading.Event

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        request = self.rfile.read(int(self.headers["Content-Length"])).decode()
        if SECRET_LINE in request:
            self.arrived.set()
            self.release.wait(30)
            answer = {"id": "x", "object": "chat.completion", "created": 1, "model": "model-a",
                      "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                   "finish_reason": "stop"}],
                      "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}
            self._send(200, "application/json", json.dumps(answer).encode())
            return
        echo = f"bad input near: {SECRET_LINE} (key {self.headers.get('Authorization', '')[7:]})"
        if self.mode == "break":
            chunk = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "model-a",
                     "choices": [{"index": 0, "delta": {"content": "Echo:"}, "finish_reason": None}]}
            error = {"error": {"message": echo, "type": "server_error", "code": 500}}
            self._send(200, "text/event-stream", f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(error)}\n\n".encode())
            return
        error = {"error": {"message": echo, "type": "invalid_request_error", "param": None, "code": "bad_input"}}
        self._send(422 if self.mode == "refuse" else 500, "application/json", json.dumps(error).encode())


@pytest.fixture
def echoing() -> Iterator[type[EchoingUpstream]]:
    handler = type("Handler", (EchoingUpstream,), {"arrived": threading.Event(), "release": threading.Event()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    handler.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield handler
    handler.release.set()
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("mode, stream, status, code", [
    ("refuse", False, 422, "upstream_error"),
    ("refuse", True, 422, "upstream_error"),
    ("fail", False, 502, "upstream_failed"),
    ("break", True, 200, "upstream_stream_broken"),
])
def test_an_upstream_error_is_not_masked_by_another_tenants_prompt_in_flight(echoing, mode: str, stream: bool,
                                                                            status: int, code: str) -> None:
    echoing.mode = mode
    with start_service(echoing.base_url) as served:
        other: dict[str, httpx.Response] = {}
        prompt = {"model": "router", "messages": [{"role": "user", "content": f"summarize this\n{SECRET_LINE}"}]}
        held = threading.Thread(target=lambda: other.update(answer=httpx.post(
            served.url + "/v1/chat/completions", headers=auth("team-b"), json=prompt, timeout=30)))
        held.start()
        assert echoing.arrived.wait(20)  # team-b's prompt is in flight from here on
        probe = httpx.post(served.url + "/v1/chat/completions", headers=auth("team-a"),
                           json={**PROBE, "stream": stream}, timeout=30)
        echoing.release.set()
        held.join(30)
    assert other["answer"].status_code == 200
    assert probe.status_code == status
    body = json.loads([line for line in probe.text.splitlines() if line.startswith("data: ")][-1][6:]) \
        if mode == "break" else probe.json()
    assert body["error"]["code"] == code
    assert f"bad input near: {SECRET_LINE} (key [REDACTED])" in body["error"]["message"]
    assert UPSTREAM_KEY not in probe.text


def test_redact_keys_masks_the_keys_and_not_the_prompts_in_flight() -> None:
    key = "sk-redaction-unit-key-0123"
    hide([key])
    text = f"{SECRET_LINE} / {key}"
    with hidden([SECRET_LINE]):
        assert redact(text) == "[REDACTED] / [REDACTED]"  # what logs get
        assert redact_keys(text) == f"{SECRET_LINE} / [REDACTED]"  # what a client gets


def test_a_store_failure_is_a_generic_503_and_the_log_has_the_cause(tmp_path: Path, upstream,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state.db"
    caplog.set_level(logging.WARNING, logger="bandit_router.service.app")
    with start_service(upstream.base_url, state={"sqlite": str(path)}) as served:
        answered = httpx.post(served.url + "/v1/chat/completions", headers=auth("team-a"), json=PROBE, timeout=30)
        assert answered.status_code == 200, answered.text
        conn = sqlite3.connect(path)  # the file loses its tables: every use of the store fails from here on
        conn.executescript("DROP TABLE budget_ledger; DROP TABLE budget_holds; DROP TABLE budget_total; "
                           "DROP TABLE learned_state; DROP TABLE learned_batches;")
        conn.close()
        chat = httpx.post(served.url + "/v1/chat/completions", headers=auth("team-a"), json=PROBE, timeout=30)
        rating = httpx.post(served.url + "/v1/feedback", headers=auth("team-a"), timeout=30,
                            json={"route_id": answered.json()["id"], "score": 1.0})
    assert chat.status_code == 503, chat.text
    assert chat.json()["error"] == {"message": STORE_UNAVAILABLE, "type": "server_error", "param": None,
                                    "code": "store_unavailable"}
    assert str(tmp_path) not in chat.text and "no such table" not in chat.text
    # the rating was applied on this replica and queued for the next sync: answered so that it is not resent
    assert rating.status_code == 200 and rating.json()["persisted"] is False, rating.text
    assert str(tmp_path) not in rating.text
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert (f"chat completion for tenant team-a failed: store_unavailable (StoreUnavailableError: SQLite file "
            f"{str(path)!r} failed: no such table") in logged
    assert (f"feedback for tenant team-a applied but not persisted, queued for the next sync: SQLite file "
            f"{str(path)!r} failed: no such table") in logged


def test_an_unreachable_self_hosted_model_does_not_show_tenants_where_it_runs():
    # hosted_vllm's connection error names the host and port ("Cannot connect to host 127.0.0.1:PORT ssl:<...
    # object at 0x...>"); a tenant is shown neither, nor Python's object addresses
    dead = f"http://127.0.0.1:{free_port()}/v1"
    models = [{"name": "hosted_vllm/model-a", "input_cost_per_token": 1e-7, "output_cost_per_token": 2e-7,
               "api_base": dead, "api_key_env": "UPSTREAM_KEY", "context_window": 100_000}]
    with start_service(dead, models=models) as served:
        for stream in (False, True):
            answer = httpx.post(f"{served.url}/v1/chat/completions", json={**PROBE, "stream": stream},
                                headers=auth("team-a"), timeout=30)
            assert answer.status_code == 502, answer.text
            message = answer.json()["error"]["message"]
            assert "[endpoint]" in message and "127.0.0.1" not in message and " at 0x" not in message, message


def test_public_masks_keys_endpoints_and_object_addresses_only():
    private = endpoints(["http://user:pw@vllm.internal:8000/v1/", None, "http://10.0.0.7:9000"])
    assert set(private) == {"http://user:pw@vllm.internal:8000/v1", "vllm.internal:8000", "vllm.internal",
                            "http://10.0.0.7:9000", "10.0.0.7:9000", "10.0.0.7"}
    assert [len(t) for t in private] == sorted((len(t) for t in private), reverse=True)  # longest first
    hide(["sk-upstream-secret-key"])
    text = ("Cannot connect to host vllm.internal:8000 ssl:<ssl.SSLContext object at 0x7f3a2b> via 10.0.0.7 "
            "with sk-upstream-secret-key; see https://api.example.com/docs")
    assert public(text, private) == ("Cannot connect to host [endpoint] ssl:<object> via [endpoint] with "
                                     "[REDACTED]; see https://api.example.com/docs")

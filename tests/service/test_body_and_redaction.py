"""What a security trial of the service found: a chunked body over server.max_body_bytes was buffered in full before
the 413, a body that never arrives held its connection open, and a provider's error echoing the operator's upstream
API key reached the tenant as is."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import httpx
import pytest

from bandit_router.service import app as service_app

from .conftest import KEYS, UPSTREAM_KEY, metric, start_service

HEADERS = {"Authorization": f"Bearer {KEYS['team-a']}"}
ASK = {"model": "router", "messages": [{"role": "user", "content": "hello"}]}
LIMIT = 100_000


def test_a_chunked_body_over_the_limit_is_refused_before_it_is_all_read(upstream) -> None:
    sent = 0

    def body() -> Iterator[bytes]:  # 64 MB in 64 KB chunks: no content-length, so sent chunked
        nonlocal sent
        for _ in range(1000):
            sent += 1
            yield b" " * 65_536

    with start_service(upstream.base_url, server={"max_body_bytes": LIMIT}) as served:
        response = httpx.post(served.url + "/v1/chat/completions", headers=HEADERS, content=body(), timeout=30)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "body_too_large"
        assert f"max_body_bytes = {LIMIT}" in response.json()["error"]["message"]
        assert sent < 1000  # the service stopped reading (and closed the connection) long before the end
        # a chunked body under the limit is still read
        ok = httpx.post(served.url + "/v1/chat/completions", headers=HEADERS, timeout=30,
                        content=iter([json.dumps(ASK)[:10].encode(), json.dumps(ASK)[10:].encode()]))
        assert ok.status_code == 200, ok.text


def test_a_declared_length_over_the_limit_is_refused_unread_on_both_endpoints(upstream) -> None:
    with start_service(upstream.base_url, server={"max_body_bytes": LIMIT}) as served:
        for path in ("/v1/chat/completions", "/v1/feedback"):
            response = httpx.post(served.url + path, headers=HEADERS, content=b" " * (LIMIT + 1))
            assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"
            assert response.headers["connection"] == "close"


def test_a_body_that_stalls_is_answered_408_within_the_bound(upstream, monkeypatch) -> None:
    monkeypatch.setattr(service_app, "BODY_TIMEOUT", 0.5)
    with start_service(upstream.base_url) as served, socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.settimeout(10)
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer " + KEYS["team-a"].encode() + b"\r\nContent-Length: 100\r\n\r\n{")
        started = time.monotonic()
        answer = b""
        while chunk := sock.recv(65_536):  # the service answers, then closes the connection
            answer += chunk
        elapsed = time.monotonic() - started
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    assert json.loads(body)["error"]["code"] == "body_timeout"
    assert elapsed < 5


def test_a_client_gone_before_its_body_arrived_is_counted_499_not_500(upstream) -> None:
    with start_service(upstream.base_url) as served:
        with socket.create_connection(("127.0.0.1", served.port)) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Authorization: Bearer " + KEYS["team-a"].encode() + b"\r\nContent-Length: 100\r\n\r\n{")
        deadline, counts = time.monotonic() + 10, {}
        while time.monotonic() < deadline and not counts.get("499"):
            text = httpx.get(served.url + "/metrics").text
            counts = {status: metric(text, "bandit_router_requests_total", status=status) for status in ("499", "500")}
            time.sleep(0.1)
    assert counts == {"499": 1, "500": 0}


class EchoingUpstream(BaseHTTPRequestHandler):
    """An upstream that refuses every request with a 422 whose message echoes the API key it was sent."""

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        key = self.headers.get("Authorization", "")[7:]
        body = json.dumps({"error": {"message": f"tool schema invalid for key {key}", "type": "invalid_request_error",
                                     "param": None, "code": "bad_schema"}}).encode()
        self.send_response(422)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def echoing() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoingUpstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_error_echoing_the_key_reaches_the_tenant_redacted(echoing: str, stream: bool) -> None:
    with start_service(echoing) as served:
        response = httpx.post(served.url + "/v1/chat/completions", headers=HEADERS, json={**ASK, "stream": stream},
                              timeout=30)
    assert response.status_code == 422
    assert UPSTREAM_KEY not in response.text
    error = response.json()["error"]
    assert error["code"] == "upstream_error"
    assert "tool schema invalid for key [REDACTED]" in error["message"]  # the cause stays


class BreakingUpstream(BaseHTTPRequestHandler):
    """An upstream whose stream sends one chunk, then an error event echoing the API key it was sent."""

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        key = self.headers.get("Authorization", "")[7:]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        chunk = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "model-a",
                 "choices": [{"index": 0, "delta": {"content": "Echo:"}, "finish_reason": None}]}
        error = {"error": {"message": f"overloaded for key {key}", "type": "server_error", "code": 500}}
        self.wfile.write(f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(error)}\n\n".encode())
        self.wfile.flush()


def test_a_stream_broken_by_an_error_echoing_the_key_ends_redacted() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BreakingUpstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with start_service(f"http://127.0.0.1:{server.server_address[1]}/v1") as served:
            response = httpx.post(served.url + "/v1/chat/completions", headers=HEADERS,
                                  json={**ASK, "stream": True}, timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    assert response.status_code == 200 and UPSTREAM_KEY not in response.text
    error = json.loads([line for line in response.text.splitlines() if line.startswith("data: ")][-1][6:])["error"]
    assert error["code"] == "upstream_stream_broken"
    assert "overloaded for key [REDACTED]" in error["message"]  # the cause stays

"""What a user trial of the service found: the stream's last chunk with and without include_usage, a stream that
breaks, one its client closes, malformed bodies, the budget's 429 (not retried), model retrieve and the graceful-shutdown setting."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import httpx
import openai
import pytest

from bandit_router.errors import ConfigError
from bandit_router.service import parse_config, serve

from .conftest import KEYS, UPSTREAM_KEY, LiveServer, config_dict, metric, start_service

HEADERS = {"Authorization": f"Bearer {KEYS['team-a']}"}
ASK = {"model": "router", "messages": [{"role": "user", "content": "stream these four words"}]}


def client(served: LiveServer, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url + "/v1", api_key=KEYS["team-a"], max_retries=retries)


def events(served: LiveServer, **body: Any) -> list[Any]:
    """The data of a stream's SSE events (without the final [DONE])."""
    with httpx.stream("POST", served.url + "/v1/chat/completions", headers=HEADERS, timeout=30,
                      json={**ASK, "stream": True, **body}) as response:
        assert response.status_code == 200
        data = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]" or "error" in data[-1]
    return [json.loads(d) for d in data if d != "[DONE]"]


def test_without_include_usage_every_chunk_has_choices_and_the_finish_chunk_carries_the_usage(
        served: LiveServer) -> None:
    chunks = list(client(served).chat.completions.create(**ASK, stream=True))
    assert all(c.choices for c in chunks)  # `chunk.choices[0].delta` never fails
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Echo: stream these four words"
    last = chunks[-1]
    assert len({c.id for c in chunks}) == 1 and len({c.model for c in chunks}) == 1
    assert last.choices[0].finish_reason == "stop"
    assert last.usage.prompt_tokens == 4 and last.usage.completion_tokens == 5
    assert last.model_extra["bandit_router"]["route_id"] == last.id and last.model_extra["bandit_router"]["cost"] > 0
    assert all(c.usage is None and "bandit_router" not in c.model_extra for c in chunks[:-1])


def test_with_include_usage_the_last_chunk_has_no_choices_as_openai(served: LiveServer) -> None:
    chunks = events(served, stream_options={"include_usage": True})
    *earlier, last = chunks
    assert all(c["choices"] and c["usage"] is None for c in earlier)
    assert earlier[-1]["choices"][0]["finish_reason"] == "stop"
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 5
    assert last["bandit_router"]["route_id"] == last["id"] and len({c["id"] for c in chunks}) == 1


@pytest.mark.parametrize("options, param", [({"include_usage": "yes"}, "stream_options.include_usage"),
                                            ({"colour": 1}, "stream_options.colour"), ([], "stream_options")])
def test_invalid_stream_options(served: LiveServer, options, param) -> None:
    response = httpx.post(served.url + "/v1/chat/completions", headers=HEADERS,
                          json={**ASK, "stream": True, "stream_options": options})
    assert response.status_code == 400 and response.json()["error"]["param"] == param
    unstreamed = httpx.post(served.url + "/v1/chat/completions", headers=HEADERS,
                            json={**ASK, "stream_options": {"include_usage": True}})
    assert unstreamed.status_code == 400 and "only allowed when stream is true" in unstreamed.text


class BrokenUpstream(BaseHTTPRequestHandler):
    """An OpenAI-compatible upstream whose streams break after two chunks (the connection drops mid-body)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for text in ("Echo:", " half"):
            chunk = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "model-a",
                     "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
            data = f"data: {json.dumps(chunk)}\n\n".encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"ff\r\ndata: {")  # a chunk cut short, then the connection drops
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture
def broken() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BrokenUpstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_a_stream_that_breaks_says_so_and_is_not_counted_a_success(broken: str) -> None:
    with start_service(broken) as served:
        chunks = events(served)
        text = httpx.get(served.url + "/metrics").text
    *relayed, error = chunks
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in relayed) == "Echo: half"
    assert error["error"]["code"] == "upstream_stream_broken" and error["error"]["type"] == "server_error"
    assert error["error"]["message"].startswith(f"the upstream stream broke after {len(relayed)} chunks: ")
    assert "refused" not in error["error"]["message"]
    assert metric(text, "bandit_router_requests_total", status="200") == 0
    assert metric(text, "bandit_router_requests_total", status="502") == 1


class SlowUpstream(BaseHTTPRequestHandler):
    """Streams a chunk, then waits a long time before the next: a client gives up in between."""

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        chunk = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "model-a",
                 "choices": [{"index": 0, "delta": {"content": "Echo:"}, "finish_reason": None}]}
        try:
            for _ in range(30):
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                time.sleep(1.0)
        except OSError:
            pass


def test_a_stream_the_client_closes_is_counted_as_499() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowUpstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with start_service(f"http://127.0.0.1:{server.server_address[1]}/v1") as served:
            with httpx.stream("POST", served.url + "/v1/chat/completions", headers=HEADERS, timeout=30,
                              json={**ASK, "stream": True}) as response:
                first = next(line for line in response.iter_lines() if line.startswith("data: "))
            assert "Echo:" in first
            deadline = time.monotonic() + 15
            while (count := metric(httpx.get(served.url + "/metrics").text, "bandit_router_requests_total",
                                   status="499")) == 0 and time.monotonic() < deadline:
                time.sleep(0.2)
            text = httpx.get(served.url + "/metrics").text
    finally:
        server.shutdown()
        server.server_close()
    assert count == 1
    assert metric(text, "bandit_router_requests_total", status="200") == 0


def test_deeply_nested_json_is_a_400_naming_the_cause(served: LiveServer) -> None:
    body = json.dumps(ASK)[:-1] + ', "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = httpx.post(served.url + "/v1/chat/completions", headers={**HEADERS, "Content-Type": "application/json"},
                          content=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json" and "too deeply" in response.json()["error"]["message"]


def test_a_request_without_model_is_a_400_naming_it(served: LiveServer) -> None:
    response = httpx.post(served.url + "/v1/chat/completions", headers=HEADERS, json={"messages": ASK["messages"]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "model" and "model is required" in error["message"]


def test_the_budget_429_tells_openai_clients_not_to_retry(upstream) -> None:
    with start_service(upstream.base_url, budget={"limit": 1e-9}) as served:
        with pytest.raises(openai.RateLimitError, match="budget"):
            client(served, retries=3).chat.completions.create(**ASK)
        text = httpx.get(served.url + "/metrics").text
        refused = httpx.post(served.url + "/v1/chat/completions", headers=HEADERS, json=ASK)
    assert metric(text, "bandit_router_requests_total", status="429") == 1  # one request: no retry
    assert refused.headers["x-should-retry"] == "false" and refused.json()["error"]["code"] == "budget_exceeded"


def test_model_retrieve(served: LiveServer) -> None:
    models = client(served).models
    router = models.retrieve("router")
    assert router.id == "router" and router.object == "model" and router.owned_by == "bandit-router"
    assert models.retrieve("router:0.3").id == "router:0.3"
    for unknown in ("gpt-4o", "openai/model-a", "router:2"):
        with pytest.raises(openai.NotFoundError, match="does not exist"):
            models.retrieve(unknown)
    assert httpx.get(served.url + "/v1/models/router").status_code == 401


@pytest.mark.parametrize("server, expected", [({}, 30.0), ({"shutdown_timeout": 120}, 120.0)])
def test_the_shutdown_timeout_reaches_uvicorn(monkeypatch, server, expected) -> None:
    called: dict[str, Any] = {}
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: called.update(kwargs))
    logger = logging.getLogger("bandit_router")
    monkeypatch.setattr(logger, "handlers", list(logger.handlers))  # serve adds a handler: undone after the test
    monkeypatch.setattr(logger, "level", logger.level)
    config = parse_config(config_dict("http://127.0.0.1:9/v1", server=server), env={"UPSTREAM_KEY": UPSTREAM_KEY})
    serve(config)
    assert called["timeout_graceful_shutdown"] == expected


@pytest.mark.parametrize("value", [-1, "30", float("inf"), True])
def test_an_invalid_shutdown_timeout_names_the_field(value) -> None:
    with pytest.raises(ConfigError, match="server.shutdown_timeout must be a finite number >= 0 \\(seconds\\)"):
        parse_config(config_dict("http://127.0.0.1:9/v1", server={"shutdown_timeout": value}),
                     env={"UPSTREAM_KEY": UPSTREAM_KEY})

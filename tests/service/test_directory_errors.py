"""What a tenant is told when a rating cannot reach the replica that served the answer: a generic message with its
type and code, never the replica's internal URL or the shared file's path (those go to the operator's log)."""

from __future__ import annotations

import logging
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from bandit_router.service.directory import REPLICA_UNAVAILABLE, SQLiteDirectory, route_directory
from bandit_router.service.openai_api import STORE_UNAVAILABLE

from .conftest import KEYS, LiveServer, start_service

HEADERS = {"Authorization": f"Bearer {KEYS['team-a']}"}
PROMPT = {"model": "router", "messages": [{"role": "user", "content": "hello"}]}


def replica(base_url: str, path: Path) -> LiveServer:
    """A replica sharing the SQLite file at `path`, which records its routes under its own URL."""
    live = start_service(base_url, state={"sqlite": str(path)})
    live.service.directory = route_directory(live.service.config, live.url)
    return live


def rate(url: str, route_id: str) -> httpx.Response:
    return httpx.post(url + "/v1/feedback", headers=HEADERS, json={"route_id": route_id, "score": 1.0}, timeout=30)


def test_a_rating_for_a_dead_replica_hides_its_url_and_the_log_has_it(tmp_path: Path, upstream,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bandit_router.service.directory")
    path = tmp_path / "state.db"
    with replica(upstream.base_url, path) as other:  # started first: the owner cannot get its port
        with replica(upstream.base_url, path) as owner:
            answer = httpx.post(owner.url + "/v1/chat/completions", headers=HEADERS, json=PROMPT, timeout=30)
            assert answer.status_code == 200, answer.text
        refused = rate(other.url, answer.json()["id"])  # the owner is gone: its URL refuses connections
    assert refused.status_code == 503
    assert refused.json()["error"] == {"message": REPLICA_UNAVAILABLE, "type": "server_error", "param": None,
                                       "code": "replica_unavailable"}
    assert owner.url not in refused.text and str(owner.port) not in refused.text
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert (f"passing a rating on to the replica at {owner.url} failed: replica_unavailable (ConnectError: "
            in logged)


class NotAReplica(BaseHTTPRequestHandler):
    """Another internal service, now on the port a dead replica advertised: it answers anything with `answer`."""

    answer: tuple[int, str, bytes]

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        status, content_type, body = self.answer
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def not_a_replica() -> Iterator[tuple[str, type[NotAReplica]]]:
    handler = type("Handler", (NotAReplica,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("answer", [
    (200, "application/json", b'{"accounts": ["internal-secret"]}'),
    (502, "text/html", b"<html>502 Bad Gateway: internal-secret.corp:8443</html>"),
])
def test_what_answers_at_a_dead_replicas_url_is_not_relayed(tmp_path: Path, upstream, not_a_replica, answer,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bandit_router.service.directory")
    url, handler = not_a_replica
    handler.answer = answer
    path = tmp_path / "state.db"
    SQLiteDirectory(str(path), "default", url).claim("route-of-a-dead-replica", ttl=60)
    with replica(upstream.base_url, path) as served:
        refused = rate(served.url, "route-of-a-dead-replica")
    assert refused.status_code == 503
    assert refused.json()["error"]["message"] == REPLICA_UNAVAILABLE
    assert "internal-secret" not in refused.text and url not in refused.text
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert (f"passing a rating on to the replica at {url} failed: replica_unavailable (HTTP {answer[0]} that is "
            "not a replica's answer to a rating)") in logged


def test_a_failed_owner_lookup_hides_the_shared_file(tmp_path: Path, upstream) -> None:
    path = tmp_path / "state.db"
    with replica(upstream.base_url, path) as served:
        conn = sqlite3.connect(path)  # the directory's table is lost: every lookup fails from here on
        conn.execute("DROP TABLE route_owners")
        conn.close()
        refused = rate(served.url, "route-served-elsewhere")
    assert refused.status_code == 503
    assert refused.json()["error"]["message"] == STORE_UNAVAILABLE
    assert refused.json()["error"]["code"] == "store_unavailable"
    assert str(tmp_path) not in refused.text and "route_owners" not in refused.text

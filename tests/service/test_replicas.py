"""Several `bandit-router serve` processes sharing learned state and budget through one Redis server, or through
one SQLite file on one machine."""

from __future__ import annotations

import concurrent.futures
import signal
import time
from pathlib import Path

import httpx
import pytest

from bandit_router.service.directory import SQLiteDirectory
from bandit_router.service.ledger import RedisBudget
from bandit_router.store import RedisStateStore, SQLiteStateStore

from .conftest import CHEAP, DEAR, KEYS, RedisServer, ServeProcess, config_dict, scored_table, write_config

HEADERS = {"Authorization": f"Bearer {KEYS['team-a']}"}


def ask(url: str, content: str, **body) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", headers=HEADERS, timeout=30,
                      json={"model": "router", "messages": [{"role": "user", "content": content}], **body})


def rate(url: str, route_id: str, score: float) -> httpx.Response:
    return httpx.post(url + "/v1/feedback", headers=HEADERS, json={"route_id": route_id, "score": score}, timeout=30)


def learned(redis_url: str) -> int:
    """How many ratings the shared state in Redis holds."""
    return sum(int(parts["n"]) for parts in RedisStateStore(redis_url).totals().values())


def start(tmp_path: Path, name: str, upstream, state: dict, **overrides) -> ServeProcess:
    config = config_dict(upstream.base_url, state={**state, "sync_every": 0.2}, **overrides)
    return ServeProcess(write_config(tmp_path / f"{name}.json", config), tmp_path / f"{name}.log")


def test_two_replicas_share_learning_and_budget_and_survive_a_kill(tmp_path: Path, upstream,
                                                                   redis_server: RedisServer) -> None:
    """One pair of `serve` processes (starting one takes seconds): what one learns the other uses; together they
    never overspend the shared budget; killing one loses no acknowledged rating and the other keeps serving."""
    budget = {"limit": 0.1, "pacer": "none"}
    first, second = (start(tmp_path, name, upstream, {"redis": redis_server.url}, budget=budget)
                     for name in ("a", "b"))
    try:
        # learning: 30 ratings on the first replica, each acknowledged once merged into Redis
        for step in range(30):
            answer = ask(first.url, f"question {step}").json()
            acked = rate(first.url, answer["id"], 1.0 if answer["model"] == CHEAP else 0.0).json()
            assert acked["persisted"] is True
        assert learned(redis_server.url) == 30
        ask(second.url, "warm up")  # the second replica pulls the merged state at its next sync
        time.sleep(0.5)
        chosen = [ask(second.url, f"question {step}").json()["model"] for step in range(20)]
        assert chosen.count(CHEAP) >= 18
        # a rating sent to the other replica is passed on to the one that served the answer, and counts once
        answer = ask(first.url, "rated elsewhere").json()
        passed_on = rate(second.url, answer["id"], 1.0 if answer["model"] == CHEAP else 0.0)
        assert passed_on.status_code == 200 and passed_on.json()["persisted"] is True
        assert rate(second.url, answer["id"], 1.0).status_code == 409
        assert learned(redis_server.url) == 31
        assert "bandit_router_feedback_forwarded_total 2" in httpx.get(second.url + "/metrics").text

        # budget: slow answers keep many holds open at once; worst cases add up to far more than the limit
        spent_before = RedisBudget(redis_server.url, 0.1).spent()
        upstream.set_behavior("model-b", delay=0.5)
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            replies = list(pool.map(lambda i: ask((first, second)[i % 2].url, f"spend {i}", max_tokens=1000,
                                                  models=[DEAR]), range(40)))
        served = [r.json() for r in replies if r.status_code == 200]
        refused = [r.json() for r in replies if r.status_code == 429]
        assert len(served) + len(refused) == 40 and refused and served
        assert {r["error"]["code"] for r in refused} == {"budget_exceeded"}
        ledger = RedisBudget(redis_server.url, 0.1)
        spent = sum(r["bandit_router"]["cost"] for r in served)
        assert ledger.spent() - spent_before == pytest.approx(spent, abs=1e-9) and ledger.reserved() == 0
        assert ledger.spent() <= 0.1

        # a kill: every acknowledged rating is in Redis, and the survivor keeps serving and learning
        upstream.set_behavior("model-b", delay=0.0)
        acked = learned(redis_server.url)
        orphan = ask(first.url, "answered just before the kill").json()
        for step in range(5):
            for server in (first, second):
                answer = ask(server.url, f"q {step}").json()
                acked += rate(server.url, answer["id"], 0.7).status_code == 200
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        assert learned(redis_server.url) == acked == 41
        answer = ask(second.url, "still here").json()
        assert rate(second.url, answer["id"], 1.0).status_code == 200 and learned(redis_server.url) == 42
        lost = rate(second.url, orphan["id"], 1.0)  # its replica is gone: not applied, and said so
        assert lost.status_code == 503 and lost.json()["error"]["code"] == "replica_unavailable"
    finally:
        first.stop()
        second.stop()


def test_processes_sharing_a_sqlite_file_pass_ratings_on(tmp_path: Path, upstream) -> None:
    """With `[state] sqlite`, a rating sent to the process that did not answer reaches the one that did, once."""
    path = tmp_path / "state.db"
    prior = {"table": scored_table(tmp_path / "scored", [CHEAP, DEAR])}  # each replica's own: never in the file
    first, second = (start(tmp_path, name, upstream, {"sqlite": str(path)}, prior=prior) for name in ("a", "b"))
    try:
        answers = [ask(first.url, f"question {step}").json() for step in range(3)]
        for answer in answers:
            passed_on = rate(second.url, answer["id"], 1.0)
            assert passed_on.status_code == 200 and passed_on.json()["persisted"] is True
        assert rate(first.url, answers[0]["id"], 0.0).status_code == 409  # applied once, whoever is asked
        assert sum(int(parts["n"]) for parts in SQLiteStateStore(path).totals().values()) == 3
        assert "bandit_router_feedback_forwarded_total 3" in httpx.get(second.url + "/metrics").text
        assert "bandit_router_feedback_applied_total 3" in httpx.get(first.url + "/metrics").text
    finally:
        first.stop()
        second.stop()
    said = (tmp_path / "a.log").read_text()  # what a user starting `serve` sees: what loads, then where it listens
    assert said.index("bandit-router serve: building the router (2 models") < said.index(
        f"bandit-router serve: warm-started from {prior['table']!r}: 30 prompts, each scored by 2 of the 2 models"
    ) < said.index(f"Uvicorn running on http://127.0.0.1:{first.port}")


def test_the_sqlite_directory_names_the_owner_until_the_route_expires(tmp_path: Path) -> None:
    now = [1000.0]
    a, b = (SQLiteDirectory(str(tmp_path / "state.db"), "ns", url, clock=lambda: now[0])
            for url in ("http://127.0.0.1:1", "http://127.0.0.1:2/"))
    a.claim("r1", ttl=60)
    assert b.owner("r1") == "http://127.0.0.1:1" and a.owner("r1") is None  # the owner itself is not "another"
    assert SQLiteDirectory(str(tmp_path / "state.db"), "other", "http://x", clock=lambda: now[0]).owner("r1") is None
    now[0] += 61
    assert b.owner("r1") is None
    b.claim("r2", ttl=60)  # writing drops the expired rows
    rows = b._file.conn.execute("SELECT route_id FROM route_owners").fetchall()
    assert rows == [("r2",)] and a.owner("r2") == "http://127.0.0.1:2"

"""Task hints: the router learns each declared task's best model even when the prompt text does not tell them apart."""

from __future__ import annotations

import numpy as np
import pytest

from bandit_router import Router, TaskHints
from bandit_router.errors import ConfigError
from bandit_router.priors import table_prior

from ..fakes import record_policy_vectors
from .conftest import DIM, hashed_bow

SMALL, LARGE = "openai/small", "openai/large"
PROMPTS = ["please handle this request", "another request to handle", "handle it please"]
BEST = {"chat": SMALL, "code": LARGE}  # the same kind of text, a different best model per task


def reward(task: str, model: str) -> float:
    return 1.0 if model == BEST[task] else 0.0


def test_the_policy_sees_the_scaled_prompt_vector_and_the_tasks_one_hot(make_router, monkeypatch):
    router = make_router(tasks=TaskHints(["chat", "code"], text_weight=0.5))
    assert router.tasks == ("chat", "code") and router.dim == DIM + 2 and router.policy.dim == DIM + 2
    vectors = router.vectors(PROMPTS[:3], ["code", None, "chat"])
    np.testing.assert_allclose(vectors[:, :DIM], 0.5 * np.array([hashed_bow(p) for p in PROMPTS[:3]]))
    np.testing.assert_array_equal(vectors[:, DIM:], [[0, 1], [0, 0], [1, 0]])
    seen = record_policy_vectors(router, monkeypatch)
    router.route(PROMPTS[0], task="code")
    router.complete(PROMPTS[0], task="chat", mock_response="ok")  # `task` goes to route, not to LiteLLM
    np.testing.assert_array_equal([v[DIM:] for v in seen], [[0, 1], [1, 0]])
    assert make_router().dim == DIM  # no tasks: the prompt vector as it is


def test_feedback_teaches_each_task_its_own_best_model(make_router):
    router = make_router(tasks=["chat", "code"])
    for step in range(120):
        task = ("chat", "code")[step % 2]
        decision = router.route(PROMPTS[step % 3], task=task)
        router.feedback(decision.route_id, reward(task, decision.model))
    for task, best in BEST.items():
        assert [router.route(p, task=task).model for p in PROMPTS] == [best] * 3
    blind = make_router()  # the same stream without hints cannot tell the two tasks apart
    for step in range(120):
        decision = blind.route(PROMPTS[step % 3])
        blind.feedback(decision.route_id, reward(("chat", "code")[step % 2], decision.model))
    quality = blind.route(PROMPTS[0]).predicted_quality
    assert max(quality[SMALL], quality[LARGE]) < 0.75


def test_table_prior_and_observe_take_tasks(make_router):
    router = make_router(tasks=["chat", "code"])
    tasks = ["chat", "code"] * 3
    prompts = [PROMPTS[i % 3] for i in range(6)]
    scores = np.array([[reward(t, SMALL), reward(t, LARGE)] for t in tasks])
    table_prior(router, prompts, scores, [SMALL, LARGE], strength=5.0, tasks=tasks)
    router.observe(PROMPTS[0], SMALL, 1.0, task="chat")
    assert router.route(PROMPTS[1], task="chat").model == SMALL
    assert router.route(PROMPTS[1], task="code").model == LARGE


def test_saved_tasks_come_back(make_router, tmp_path):
    router = make_router(tasks=TaskHints(["chat", "code"], text_weight=0.7))
    for step in range(20):
        decision = router.route(PROMPTS[step % 3], task="code")
        router.feedback(decision.route_id, reward("code", decision.model))
    router.save(tmp_path / "router.bin")
    loaded = Router.load(tmp_path / "router.bin", encoder=hashed_bow)
    assert loaded.tasks == ("chat", "code") and loaded.hints is not None and loaded.hints.text_weight == 0.7
    assert (loaded.route(PROMPTS[0], task="code").predicted_quality
            == router.route(PROMPTS[0], task="code").predicted_quality)


@pytest.mark.parametrize("settings, message", [
    ({"tasks": "chat"}, "tasks must be a list"),
    ({"tasks": ["chat", ""]}, "tasks must be a list"),
    ({"tasks": ["chat", "chat"]}, "tasks must be distinct"),
    ({"tasks": lambda: TaskHints(["chat"], text_weight=0)}, r"text_weight must be a number in \(0, 10\]"),
    ({"tasks": lambda: TaskHints(["chat"], text_weight=float("nan"))}, "text_weight"),
    ({"tasks": lambda: TaskHints(["chat"], text_weight=True)}, "text_weight"),
])
def test_invalid_task_settings_name_the_field(make_router, settings, message):
    with pytest.raises(ConfigError, match=message):
        make_router(**{k: v() if callable(v) else v for k, v in settings.items()})


def test_unknown_tasks_are_refused_before_anything_is_routed(make_router):
    router = make_router(tasks=["chat", "code"])
    with pytest.raises(ConfigError, match=r"task must be one of the router's tasks \['chat', 'code'\]"):
        router.route(PROMPTS[0], task="poetry")
    with pytest.raises(ConfigError, match="declares no tasks"):
        make_router().route(PROMPTS[0], task="chat")
    with pytest.raises(ConfigError, match="one task"):
        router.vectors(PROMPTS, ["chat"])
    assert not router.ledger.waiting


def test_decisions_and_the_decision_log_record_the_task(make_router, tmp_path):
    import sqlite3

    path = tmp_path / "decisions.db"
    with sqlite3.connect(path) as old:  # a log written before decisions recorded their task
        old.execute("CREATE TABLE decisions (route_id TEXT PRIMARY KEY, created_at REAL NOT NULL, model TEXT NOT NULL,"
                    " propensity REAL NOT NULL, cost_weight REAL NOT NULL, predictions TEXT NOT NULL, failed TEXT NOT"
                    " NULL DEFAULT '[]', prompt TEXT, vector BLOB, status TEXT NOT NULL DEFAULT 'routed', error TEXT,"
                    " cost REAL, prompt_tokens INTEGER, completion_tokens INTEGER, score REAL, rewarded_at REAL)")
        old.execute("INSERT INTO decisions (route_id, created_at, model, propensity, cost_weight, predictions)"
                    " VALUES ('old', 0, 'm', 1, 0, '{}')")
    router = make_router(tasks=["chat", "code"], log=str(path))
    decisions = [router.route(PROMPTS[0], task="code"), router.route(PROMPTS[1])]
    assert [d.task for d in decisions] == ["code", None]
    assert [(row["route_id"], row["task"]) for row in router.log.rows()] == [
        ("old", None), (decisions[0].route_id, "code"), (decisions[1].route_id, None)]

"""Router.restore_pending: decisions waiting for feedback re-opened from the decision log after a restart or load."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any, Iterator

import litellm
import numpy as np
import pytest

from bandit_router import (AllModelsFailedError, ConfigError, FeedbackSettings, LogSettings, Model, Router,
                           UnknownRouteError)
from bandit_router.store import DecisionLog, SQLiteDecisionLog
from bandit_router.testing import FakeLLMServer, ModelBehavior

from .conftest import hashed_bow

PROMPTS = ["what is two plus two", "write a haiku about the sea", "summarise the french revolution"]
SECRET = "a-feedback-secret-of-32-bytes-xx"
CHEAP = ["openai/small", "openai/medium"]


def logged(path: Path) -> LogSettings:
    return LogSettings(path, store_vectors=True)


def reload(router: Router, tmp_path: Path, **settings: Any) -> Router:
    """`router` saved, and loaded again onto its own decision log (as a restarted process would)."""
    router.save(tmp_path / "router.safetensors")
    settings.setdefault("log", logged(tmp_path / "log.sqlite"))
    return Router.load(tmp_path / "router.safetensors", encoder=hashed_bow, **settings)


def shift_created_at(path: Path, route_id: str, seconds: float) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE decisions SET created_at = created_at + ? WHERE route_id = ?", (seconds, route_id))


@pytest.mark.parametrize("policy", ["shrunk-linucb", "linucb"])
def test_restored_ratings_teach_what_they_would_have_taught_without_the_restart(make_router, tmp_path, policy):
    kept = make_router(policy, cost_weight=0.5, log=logged(tmp_path / "log.sqlite"),
                       feedback=FeedbackSettings(feedback_secret=SECRET))
    decisions = [kept.complete(p, mock_response="an answer").decision for p in PROMPTS]
    kept.feedback(decisions[0].route_id, 0.9, token=decisions[0].feedback_token)
    restarted = reload(kept, tmp_path, feedback=FeedbackSettings(feedback_secret=SECRET))
    with pytest.raises(UnknownRouteError, match="before it was restarted or loaded"):
        restarted.feedback(decisions[1].route_id, 0.2, token=decisions[1].feedback_token)

    assert restarted.restore_pending() == 2
    assert list(restarted.ledger.waiting) == list(kept.ledger.waiting) == [d.route_id for d in decisions[1:]]
    for route_id, pending in kept.ledger.waiting.items():  # what Pending.of built, field by field
        again = restarted.ledger.waiting[route_id]
        assert (again.model, again.created_at, again.cost_weight, again.names) == (
            pending.model, pending.created_at, pending.cost_weight, pending.names)
        for field in ("vector", "costs", "probabilities"):
            assert np.array_equal(getattr(again, field), getattr(pending, field)), field
    assert all(np.array_equal(v, kept.policy.state()[k]) for k, v in restarted.policy.state().items())

    for router in (kept, restarted):  # the tokens issued before the restart still sign the ratings
        router.feedback(decisions[1].route_id, 0.2, token=decisions[1].feedback_token)
        router.feedback(decisions[2].route_id, 1.0, token=decisions[2].feedback_token)
    before, after = kept.policy.state(), restarted.policy.state()
    assert before.keys() == after.keys()
    assert all(np.array_equal(after[k], before[k]) for k in before), "the restored ratings taught something else"
    assert not restarted.ledger.waiting
    assert restarted.restore_pending() == 0  # both are rated in the log now


def test_a_fallback_is_restored_for_the_model_that_answered(tmp_path):
    with FakeLLMServer({"down": ModelBehavior(fail_status=500), "up": ModelBehavior()}) as server:
        cards = [Model(f"openai/{name}", input_cost_per_token=1e-6, output_cost_per_token=2e-6,
                       api_base=server.base_url, api_key="sk-test") for name in ("down", "up")]
        router = Router(cards, policy="fixed", policy_settings={"model": "openai/down"}, encoder=hashed_bow,
                        seed=0, log=logged(tmp_path / "log.sqlite"))
        decision = router.complete(PROMPTS[0], num_retries=0).decision
        restarted = reload(router, tmp_path, api_bases={c.name: server.base_url for c in cards})
    assert restarted.restore_pending() == 1
    assert restarted.ledger.waiting[decision.route_id].model == "openai/up"


def test_only_served_unrated_recent_decisions_with_a_vector_of_the_routers_dimension_are_restored(
        make_router, cards, tmp_path, monkeypatch, caplog):
    path = tmp_path / "log.sqlite"
    router = make_router(log=logged(path))
    served = [router.complete(p, models=CHEAP, mock_response="an answer").decision for p in PROMPTS]
    old = served[0]
    shift_created_at(path, old.route_id, -120)  # beyond the pending_ttl the restarted router is given
    gone = router.complete("for the large model", models=["openai/large"], mock_response="an answer").decision
    settled = router.route("routed, then settled by the caller", models=CHEAP)
    router.settle(settled.route_id, 0.001)
    router.route("routed, never called", models=CHEAP)
    without_vector = make_router(log=LogSettings(path)).complete("no vector", mock_response="an answer").decision
    narrow = Router(cards, encoder=lambda text: hashed_bow(text, 8), log=logged(path))
    narrow.complete("eight numbers", mock_response="an answer")

    def down(**kwargs: Any) -> Any:
        raise litellm.APIConnectionError("connection reset by peer", "openai", kwargs["model"])

    monkeypatch.setattr(litellm, "completion", down)
    with pytest.raises(AllModelsFailedError):
        router.complete("every model fails", models=CHEAP, num_retries=0)
    assert sorted(row["status"] for row in router.log.rows()) == ["failed"] + ["routed"] + ["served"] * 7

    restarted = reload(router, tmp_path, feedback=FeedbackSettings(pending_ttl=60))
    restarted.remove_model("openai/large")
    with caplog.at_level(logging.WARNING, logger="bandit_router.router"):
        assert restarted.restore_pending() == 3
    assert "3 served, unrated decision(s) not restored" in caplog.text  # no vector, 8 numbers, a removed model
    assert list(restarted.ledger.waiting) == [served[1].route_id, served[2].route_id, settled.route_id]
    for route_id in (old.route_id, gone.route_id, without_vector.route_id):
        with pytest.raises(UnknownRouteError):
            restarted.feedback(route_id, 1.0)
    restarted.feedback(settled.route_id, 1.0)


def test_max_pending_keeps_the_newest_and_pushes_out_no_waiting_decision(make_router, tmp_path):
    path = tmp_path / "log.sqlite"
    router = make_router(log=logged(path))
    decisions = [router.complete(p, mock_response="an answer").decision for p in PROMPTS]
    restarted = reload(router, tmp_path, feedback=FeedbackSettings(max_pending=2))
    assert restarted.restore_pending() == 2
    assert list(restarted.ledger.waiting) == [d.route_id for d in decisions[1:]]

    again = reload(router, tmp_path, feedback=FeedbackSettings(max_pending=2))
    fresh = again.complete("made after the restart", mock_response="an answer").decision
    assert again.restore_pending() == 1
    assert list(again.ledger.waiting) == [decisions[2].route_id, fresh.route_id]  # oldest first, as expiry reads it
    assert again.restore_pending() == 0  # nothing already waiting is restored twice


def test_a_decision_closed_since_the_restart_is_not_restored_again(make_router, tmp_path):
    router = make_router(log=logged(tmp_path / "log.sqlite"))
    decisions = [router.complete(p, mock_response="an answer").decision for p in PROMPTS]
    restarted = reload(router, tmp_path, feedback=FeedbackSettings(max_pending=2, expired_reward=0.5))
    assert restarted.restore_pending() == 2
    fresh = restarted.complete("pushes the oldest restored one out", mock_response="an answer").decision
    with pytest.raises(UnknownRouteError, match="pushed out by newer decisions"):  # it learned its expired_reward
        restarted.feedback(decisions[1].route_id, 1.0)
    restarted.feedback(fresh.route_id, 1.0)  # leaves room for one
    assert restarted.restore_pending() == 1
    assert list(restarted.ledger.waiting) == [decisions[0].route_id, decisions[2].route_id]


def test_a_log_that_lists_only_its_rows_restores_the_same(make_router, tmp_path):
    class RowsOnly(SQLiteDecisionLog):
        served_unrated = DecisionLog.served_unrated  # the interface's own filter over rows()

    router = make_router(log=logged(tmp_path / "log.sqlite"))
    decisions = [router.complete(p, mock_response="an answer").decision for p in PROMPTS]
    router.feedback(decisions[1].route_id, 0.5)
    restarted = reload(router, tmp_path, log=LogSettings(RowsOnly(tmp_path / "log.sqlite"), store_vectors=True))
    assert restarted.restore_pending() == 2
    assert list(restarted.ledger.waiting) == [decisions[0].route_id, decisions[2].route_id]


class WriteOnlyLog(DecisionLog):
    def record_decision(self, decision: Any, prompt: str | None = None, vector: Any = None) -> None: ...
    def record_call(self, route_id: str, cost: float, prompt_tokens: int | None = None,
                    completion_tokens: int | None = None) -> None: ...
    def record_failure(self, route_id: str, error: BaseException) -> None: ...
    def record_feedback(self, route_id: str, score: float) -> None: ...

    def rows(self) -> Iterator[dict[str, Any]]:
        raise NotImplementedError


@pytest.mark.parametrize("log, error", [
    (None, "restore_pending needs a decision log: create or load the router with log=LogSettings"),
    ("plain", "restore_pending needs a decision log that stores prompt vectors"),
    ("write-only", "restore_pending needs a decision log that can list its rows; WriteOnlyLog cannot"),
])
def test_restore_pending_refuses_a_router_without_a_log_it_can_restore_from(make_router, tmp_path, log, error):
    settings = {None: None, "plain": LogSettings(tmp_path / "log.sqlite"),
                "write-only": LogSettings(WriteOnlyLog(), store_vectors=True)}[log]
    with pytest.raises(ConfigError, match=error):
        make_router(log=settings).restore_pending()

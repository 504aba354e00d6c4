"""Off-policy evaluation from the router's SQLite decision log."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from bandit_router import Limits, LogSettings, Model, Router
from bandit_router.encoders import sentence_encoder
from bandit_router.errors import ConfigError, DataFormatError
from bandit_router.evaluation import bundled_table_path, load_table, lookup_encoder, table_vectors
from bandit_router.evaluation.ope import LoggedDecisions, estimate, logged_decisions, target_probabilities
from bandit_router.outcome import Outcome
from bandit_router.policies import make_policy
from bandit_router.store import SQLiteDecisionLog
from bandit_router.testing import FakeLLMServer, ModelBehavior


def test_estimators_on_a_hand_made_log() -> None:
    logged = LoggedDecisions(models=["a", "b"], vectors=np.zeros((4, 2)), chosen=np.array([0, 1, 0, 1]),
                             propensity=np.array([0.5, 0.5, 0.25, 0.75]), reward=np.array([1.0, 0.0, 1.0, 0.5]),
                             cost_weight=np.zeros(4), cost=np.zeros((4, 2)))
    target = np.array([[1.0, 0.0]] * 4)  # always model a
    q = np.array([[0.8, 0.3]] * 4)
    result = estimate(logged, target, q)
    weights = np.array([2.0, 0.0, 4.0, 0.0])
    assert result.ips == pytest.approx(np.mean(weights * logged.reward))  # (2 + 4) / 4
    assert result.snips == pytest.approx(1.0)
    assert result.dm == pytest.approx(0.8)
    assert result.dr == pytest.approx(0.8 + np.mean(weights * (logged.reward - 0.8)))
    assert result.ess == pytest.approx(36 / 20)


def _hand_made_log(propensity: list[float] | None = None) -> LoggedDecisions:
    """Four decisions between models a and b; model c was eligible but never chosen."""
    return LoggedDecisions(models=["a", "b", "c"], vectors=np.zeros((4, 2)), chosen=np.array([0, 1, 0, 1]),
                           propensity=np.array(propensity or [0.5, 0.25, 0.25, 0.5]),
                           reward=np.array([1.0, 0.0, 1.0, 0.5]), cost_weight=np.zeros(4), cost=np.zeros((4, 3)))


@pytest.mark.parametrize(("target", "message"), [
    (np.full((4, 2), 0.5), r"target must have shape \(4, 3\).*got \(4, 2\)"),
    (np.full((3, 3), 1 / 3), r"target must have shape \(4, 3\).*got \(3, 3\)"),
    (np.array([[1.0, 0, 0]] * 3 + [[np.nan, 1, 0]]), "finite probabilities >= 0.*at row 3"),
    (np.array([[1.0, 0, 0]] * 2 + [[1.5, -0.5, 0]] * 2), "finite probabilities >= 0.*at row 2"),
    (np.ones((4, 3)), "target rows must sum to 1, row 0 sums to 3"),
])
def test_estimate_refuses_a_target_that_is_not_a_distribution_per_decision(target: np.ndarray, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        estimate(_hand_made_log(), target)


def test_estimate_refuses_a_logged_propensity_of_zero() -> None:
    with pytest.raises(DataFormatError, match=r"propensity must be > 0, got \[0.0\] at rows \[2\]"):
        estimate(_hand_made_log([0.5, 0.25, 0.0, 0.5]), np.array([[1.0, 0, 0]] * 4))


def test_estimate_refuses_a_target_that_never_agrees_with_the_log() -> None:
    never = np.array([[0.0, 1, 0], [1, 0, 0], [0, 0, 1], [1, 0, 0]])  # never the logged choice
    with pytest.raises(DataFormatError, match="nothing to estimate from"):
        estimate(_hand_made_log(), never)


def test_direct_estimates_are_nan_for_a_model_the_log_never_rewarded(caplog: pytest.LogCaptureFixture) -> None:
    result = estimate(_hand_made_log(), np.array([[0.5, 0, 0.5]] * 4))
    assert np.isnan(result.dm) and np.isnan(result.dr)
    assert result.ips == pytest.approx(np.mean([1.0, 0, 2.0, 0]))  # weights 1, 0, 2, 0
    assert "['c'], which the log never rewarded" in caplog.text


def _log_with_fallbacks(path: Path, policy: str, settings: dict) -> None:
    """60 rated answers from a router whose favourite model ("down") always fails, so "up" or "up2" serves."""
    with FakeLLMServer({"down": ModelBehavior(fail_status=500), "up": ModelBehavior(), "up2": ModelBehavior()}) as srv:
        cards = [Model(f"openai/{name}", input_cost_per_token=1e-6, output_cost_per_token=2e-6,
                       api_base=srv.base_url, api_key="sk-test") for name in ("down", "up", "up2")]
        router = Router(cards, policy=policy, policy_settings=settings, encoder=lambda t: np.array([1.0, 0.0]), seed=0,
                        limits=Limits(cooldown=0), log=LogSettings(path, store_vectors=True))
        router.observe("warm", "openai/down", 1.0)
        for i in range(60):
            result = router.complete(f"q{i}", num_retries=0)
            router.feedback(result.decision.route_id, 0.5)


def test_a_decision_a_fallback_served_counts_as_the_policys_first_choice(tmp_path: Path) -> None:
    """The log keeps the served model's propensity (its chance of being chosen first, not of serving: IPS read
    4.4 for a true 0.5); read as the first choice at its propensity, choosing it led to the fallback's rating."""
    _log_with_fallbacks(tmp_path / "log.db", "epsilon-greedy", {"epsilon": 0.3})
    rows = [r for r in SQLiteDecisionLog(tmp_path / "log.db").rows() if r["score"] is not None]
    logged = logged_decisions(tmp_path / "log.db")
    fell_back = [i for i, r in enumerate(rows) if r["failed"]]
    assert 0 < len(fell_back) < 60 and logged.fallbacks == len(fell_back) and len(logged) == 60
    down = logged.models.index("openai/down")
    assert all(logged.chosen[i] == down for i in fell_back)
    assert [logged.propensity[i] for i in fell_back] == [rows[i]["predictions"]["probabilities"]["openai/down"]
                                                         for i in fell_back]
    for model in ("openai/up", "openai/down"):  # every choice is rated 0.5, with or without a fallback
        always = np.zeros((len(logged), 3))
        always[:, logged.models.index(model)] = 1.0
        result = estimate(logged, always)
        assert result.snips == pytest.approx(0.5) and 0.3 < result.ips < 0.8


def test_a_fixed_policy_whose_model_always_fails_is_evaluated_as_its_fallbacks(tmp_path: Path) -> None:
    _log_with_fallbacks(tmp_path / "log.db", "fixed", {"model": "openai/down"})  # logged propensity 0 before
    logged = logged_decisions(tmp_path / "log.db")
    assert logged.fallbacks == 60 and set(logged.propensity) == {1.0}
    assert estimate(logged, np.eye(3)[[logged.models.index("openai/down")] * 60]).ips == pytest.approx(0.5)
    with pytest.raises(DataFormatError, match="nothing to estimate from"):
        estimate(logged, np.eye(3)[[logged.models.index("openai/up")] * 60])


def test_a_log_without_vectors_cannot_be_evaluated(tmp_path: Path) -> None:
    cards = [Model(name, input_cost_per_token=1e-6, output_cost_per_token=2e-6, context_window=8000,
                   max_output_tokens=1000, supports_tools=False) for name in ("a", "b")]
    router = Router(cards, policy="random", encoder=lambda t: np.ones(3), seed=0, log=tmp_path / "log.db")
    router.feedback(router.route("hi").route_id, 1.0)
    with pytest.raises(DataFormatError, match="store_vectors=True"):
        logged_decisions(tmp_path / "log.db")


@pytest.fixture
def log_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder in memory where the machine has one: SQLite's default synchronous=FULL makes every commit wait
    for the disk (milliseconds each), and what is under test here is the estimators, not the disk."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=shm) as folder:
        yield Path(folder)


@pytest.mark.slow
def test_estimates_match_the_replayed_value_on_llmrouter9(log_dir: Path) -> None:
    """A uniformly random router logs 5,108 llmrouter-9 prompts; IPS, SNIPS and DR estimate what a frozen LinUCB
    (trained with every model's score on the other 1,000 prompts) would have scored on them, within 10%."""
    table = load_table(bundled_table_path())
    vectors = table_vectors(table, sentence_encoder())  # encoded once, then read from the disk cache
    rows = np.random.default_rng(0).permutation(len(table))
    train, logged_rows = rows[:1000], rows[1000:]
    router = Router(table.model_cards(), policy="random", encoder=lookup_encoder(table, vectors, "minilm"), seed=0,
                    log=LogSettings(log_dir / "log.db", store_vectors=True))
    for i in logged_rows:
        decision = router.route(table.prompts[i], cost_weight=0.1)
        router.feedback(decision.route_id, table.scores[i, table.models.index(decision.model)])

    target = make_policy("linucb", vectors.shape[1], table.models)
    for i in train:
        for k, model in enumerate(table.models):
            target.learn([Outcome(vectors[i], model, table.scores[i, k])])
    logged = logged_decisions(log_dir / "log.db")
    assert len(logged) == 5108 and logged.models == table.models
    probs = target_probabilities(target, logged)
    true_value = float((probs * table.scores[logged_rows]).sum(axis=1).mean())  # the log keeps routing order
    assert abs(true_value - logged.reward.mean()) > 0.1  # the target is far from the logging policy's value
    result = estimate(logged, probs)
    for name in ("ips", "snips", "dr"):
        assert getattr(result, name) == pytest.approx(true_value, rel=0.10), name

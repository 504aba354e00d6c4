"""Priors: warm starts from a full-information table and from pairwise preferences, their strength, quiz onboarding."""

import json
from pathlib import Path

import numpy as np
import pytest

from bandit_router.errors import ConfigError
from bandit_router.models import Model, estimate_tokens
from bandit_router.priors import (description_mix, fit_bradley_terry, mix_prior, onboard, preference_prior, quiz_mix,
                                  table_prior)
from bandit_router.router import Router

from .conftest import topic_encoder

MATH = [f"math problem {i}" for i in range(20)]
POEMS = [f"poem request {i}" for i in range(20)]


def cards(*names: str) -> list[Model]:
    return [Model(n, input_cost_per_token=1e-6, output_cost_per_token=1e-6) for n in names]


def router(policy: str = "linucb", **settings) -> Router:
    return Router(cards("calc", "bard"), policy=policy, policy_settings=settings or {"alpha": 0.1},
                  encoder=topic_encoder(), seed=0)


def quality(r: Router, prompt: str) -> dict[str, float]:
    return dict(r.route(prompt).predicted_quality)


def test_table_prior_routes_each_topic_to_its_model_before_any_feedback():
    r = router()
    scores = np.array([[1.0, 0.0]] * len(MATH) + [[0.0, 1.0]] * len(POEMS))
    table_prior(r, MATH + POEMS, scores, ["calc", "bard"])
    assert r.route("math problem 99").model == "calc"
    assert r.route("poem request 99").model == "bard"
    cold = router()
    assert quality(cold, "math problem 99") == {"calc": 0.0, "bard": 0.0}


@pytest.mark.parametrize("policy", ["shrunk-linucb", "linucb", "thompson", "shared-linucb"])
def test_table_prior_works_for_each_learning_policy(policy):
    r = router(policy, alpha=0.1) if policy != "thompson" else router(policy, scale=0.01)
    scores = np.array([[1.0, 0.0]] * len(MATH) + [[0.0, 1.0]] * len(POEMS))
    table_prior(r, MATH + POEMS, scores, ["calc", "bard"])
    q = quality(r, "math problem 99")
    assert q["calc"] > 0.6 > 0.4 > q["bard"]  # shrunk-linucb shrinks 40 rows of prompt weights toward the mean


def test_prior_strength_sets_how_fast_online_feedback_moves_away():
    moved = {}
    for strength in (0.05, 10.0):
        r = router()
        table_prior(r, MATH, np.array([[1.0, 0.0]] * len(MATH)), ["calc", "bard"], strength=strength)
        for prompt in MATH[:5]:
            r.observe(prompt, "calc", 0.0)  # online feedback contradicts the prior
        moved[strength] = quality(r, "math problem 99")["calc"]
    assert moved[0.05] < 0.4 < 0.8 < moved[10.0]


@pytest.mark.parametrize("strength", [0, -1.0, float("inf"), "high"])
def test_invalid_strength(strength):
    with pytest.raises(ConfigError, match="strength must be a finite number > 0"):
        table_prior(router(), MATH[:2], np.ones((2, 2)), ["calc", "bard"], strength=strength)


@pytest.mark.parametrize("scores, models, match", [
    (np.ones((3, 2)), ["calc", "bard"], "scores must have shape"),
    (np.full((2, 2), 1.5), ["calc", "bard"], r"scores must be finite numbers in \[0, 1\]"),
    (np.ones((2, 1)), ["nobody"], "unknown names"),
])
def test_invalid_table(scores, models, match):
    with pytest.raises(ConfigError, match=match):
        table_prior(router(), MATH[:2], scores, models)


def unpriced(*names: str) -> Router:
    return Router([Model(n, input_cost_per_token=0.0, output_cost_per_token=0.0) for n in names],
                  encoder=topic_encoder(), seed=0)


def test_table_prior_teaches_each_models_cost_once_per_row_whatever_the_strength():
    tokens = estimate_tokens(MATH[0])
    cold = unpriced("calc", "bard")
    table_prior(cold, MATH, np.ones((20, 2)), ["calc", "bard"])
    np.testing.assert_array_equal(cold.costs.predict(["calc", "bard"], tokens), [0.0, 0.0])  # unknown: no costs
    r = unpriced("calc", "bard")
    table_prior(r, MATH, np.ones((20, 2)), ["calc", "bard"], strength=10.0, costs=np.array([[5.0, 1.0]] * 20))
    np.testing.assert_allclose(r.costs.predict(["calc", "bard"], tokens), [5.0, 1.0])  # joules per call, learned
    np.testing.assert_array_equal(r.costs.state()["n"].sum(axis=1), [20, 20])


def test_table_prior_teaches_a_priced_model_its_answer_length():
    r = router()  # prices 1e-6 per token in and out: a cost teaches (cost - prompt tokens x 1e-6) / 1e-6 tokens
    tokens = [estimate_tokens(p) for p in MATH]
    costs = np.array([[(n + 40) * 1e-6, (n + 2000) * 1e-6] for n in tokens])  # calc writes 40 tokens, bard 2000
    cold = r.costs.predict(["calc", "bard"], tokens[0])  # 256 output tokens assumed before any call
    table_prior(r, MATH, np.ones((20, 2)), ["calc", "bard"], costs=costs)
    predicted = r.costs.predict(["calc", "bard"], tokens[0])  # each shrunk a little toward the models' pooled mean
    assert predicted[0] < cold[0] / 2 and predicted[1] == pytest.approx(costs[0, 1], rel=0.05)


@pytest.mark.parametrize("costs, match", [
    (np.ones((3, 2)), r"costs must have the scores' shape \(prompts, models\) = \(2, 2\)"),
    (np.array([[1.0, -1.0]] * 2), "costs must be finite numbers >= 0"),
    (np.array([[1.0, np.nan]] * 2), "costs must be finite numbers >= 0"),
])
def test_invalid_costs_teach_nothing(costs, match):
    r = unpriced("calc", "bard")
    with pytest.raises(ConfigError, match=match):
        table_prior(r, MATH[:2], np.ones((2, 2)), ["calc", "bard"], costs=costs)
    assert r.costs.state()["n"].sum() == 0 and r.route("math problem 1").predicted_quality["calc"] == 0.0


def test_a_service_prior_table_teaches_its_usd_costs(tmp_path: Path, caplog):
    from bandit_router.service import parse_config

    folder = tmp_path / "scored"
    folder.mkdir()
    (folder / "prompts.csv").write_text("prompt_id,prompt\n" + "".join(f"{i},{p}\n" for i, p in enumerate(MATH)))
    (folder / "outcomes.csv").write_text("prompt_id,model,score,cost\n" + "".join(
        f"{i},{m},1,{c}\n" for i in range(20) for m, c in (("openai/calc", 0.5), ("openai/bard", 0.1))))
    models = [{"name": f"openai/{n}", "input_cost_per_token": 0, "output_cost_per_token": 0,
               "api_base": "http://127.0.0.1:9/v1"} for n in ("calc", "bard")]
    tokens = estimate_tokens(MATH[0])
    for unit, expected in (("usd", [0.5, 0.1]), ("joule", [0.0, 0.0])):  # the service settles in USD
        (folder / "models.json").write_text(json.dumps({"cost_unit": unit, "models": {}}))
        config = parse_config({"models": models, "encoder": "hashing:16", "prior": {"table": str(folder)}},
                              keys=False)
        router = config.build_router()
        np.testing.assert_allclose(router.costs.predict(["openai/calc", "openai/bard"], tokens), expected)
    assert "its costs are left out: they are in joule, the service's in usd" in caplog.text


def test_preference_prior_learns_who_wins_where():
    r = router()
    comparisons = [(p, "calc", "bard", "calc") for p in MATH] + [(p, "bard", "calc", "bard") for p in POEMS]
    comparisons += [(MATH[0], "calc", "bard", "tie")]
    preference_prior(r, comparisons, strength=1.0)
    assert r.route("math problem 99").model == "calc"
    assert r.route("poem request 99").model == "bard"
    q = quality(r, "math problem 99")
    assert 0.0 <= q["bard"] < 0.5 < q["calc"] <= 1.0


@pytest.mark.parametrize("comparisons, match", [
    ([], "at least one"),
    ([("math 1", "calc", "bard", "sage")], "winner must be"),
    ([("math 1", "calc", "calc", "calc")], "two different models"),
])
def test_invalid_preferences(comparisons, match):
    with pytest.raises(ConfigError, match=match):
        preference_prior(router(), comparisons)


def test_bradley_terry_recovers_the_stronger_model():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 3))
    first, second = np.zeros(400, dtype=int), np.ones(400, dtype=int)
    outcome = (rng.random(400) < 0.8).astype(float)  # model 0 wins 80% of the time
    W = fit_bradley_terry(X, first, second, outcome, 2, steps=500)
    gap = W[0, -1] - W[1, -1]
    assert gap == pytest.approx(np.log(outcome.mean() / (1 - outcome.mean())), abs=0.3)


def test_onboard_scores_a_new_model_on_the_quiz_and_learns_it():
    r = router()
    table_prior(r, MATH + POEMS, np.array([[0.6, 0.2]] * len(MATH) + [[0.2, 0.6]] * len(POEMS)), ["calc", "bard"])
    asked = []

    def evaluator(prompt: str, model: str) -> float:
        asked.append((prompt, model))
        return 1.0 if prompt.startswith("math") else 0.0

    scores = onboard(r, cards("sage")[0], MATH[:10] + POEMS[:10], evaluator)
    assert scores == [1.0] * 10 + [0.0] * 10 and len(asked) == 20 and {m for _, m in asked} == {"sage"}
    assert "sage" in r.models
    assert r.route("math problem 99").model == "sage"
    assert r.route("poem request 99").model == "bard"


def test_onboard_rejects_scores_outside_the_unit_interval():
    with pytest.raises(ConfigError, match="score must be"):
        onboard(router(), "calc", MATH[:1], lambda p, m: 7)


def test_a_failed_quiz_removes_the_model_it_added_and_keeps_one_that_was_there():
    r = router()
    with pytest.raises(ConfigError, match="score must be"):
        onboard(r, cards("sage")[0], MATH[:3], lambda p, m: 2)
    assert "sage" not in r.models

    def unreachable(prompt: str, model: str) -> float:
        raise ConnectionError("the model's endpoint is down")

    with pytest.raises(ConnectionError):
        onboard(r, "calc", MATH[:3], unreachable)
    assert "calc" in r.models


def topic_router(policy: str = "linucb", **settings) -> Router:
    """calc is good at math, bard at poems; sage is added bare."""
    r = router(policy, **settings)
    table_prior(r, MATH + POEMS, np.array([[0.9, 0.1]] * len(MATH) + [[0.1, 0.9]] * len(POEMS)), ["calc", "bard"])
    r.add_model(cards("sage")[0])
    return r


def test_mix_prior_predicts_a_new_model_as_the_mix_of_known_ones():
    r = topic_router()
    assert quality(r, "math problem 99")["sage"] == 0.0
    mix_prior(r, "sage", {"calc": 1.0})
    q = quality(r, "math problem 99")
    assert q["sage"] == pytest.approx(q["calc"]) and q["sage"] > 0.8
    mix_prior(r, "sage", {"calc": 0.5, "bard": 0.5}, offset=0.2)  # replaces the first prior
    for prompt in ("math problem 99", "poem request 99"):
        q = quality(r, prompt)
        assert q["sage"] == pytest.approx((q["calc"] + q["bard"]) / 2 + 0.2)


@pytest.mark.parametrize("policy, settings", [("shrunk-linucb", {"alpha": 0.0}), ("thompson", {"scale": 0.01}),
                                             ("epsilon-greedy", {"epsilon": 0.0})])
def test_mix_prior_works_for_every_per_model_ridge_policy(policy, settings):
    r = topic_router(policy, **settings)
    mix_prior(r, "sage", {"bard": 1.0}, offset=0.05)
    q = quality(r, "poem request 99")
    assert q["sage"] == pytest.approx(q["bard"] + 0.05)


def test_mix_prior_strength_sets_how_fast_feedback_moves_away():
    moved = {}
    for strength in (5.0, 5000.0):
        r = topic_router()
        mix_prior(r, "sage", {"calc": 1.0}, strength=strength)
        for prompt in MATH[:10]:
            r.observe(prompt, "sage", 0.0)
        moved[strength] = quality(r, "math problem 99")["sage"]
    assert moved[5.0] < 0.45 < 0.8 < moved[5000.0]


def test_mix_prior_skips_models_that_learned_nothing():
    r = topic_router()
    r.add_model(cards("blank")[0])
    mix_prior(r, "sage", {"calc": 1.0, "blank": 1.0})
    q = quality(r, "math problem 99")
    assert q["sage"] == pytest.approx(q["calc"])
    with pytest.raises(ConfigError, match="has observations to borrow from"):
        mix_prior(r, "sage", {"blank": 1.0})


def test_mix_prior_survives_sharing_state_between_replicas():
    r = topic_router()
    policy = r.policy
    policy.share()
    mix_prior(r, "sage", {"calc": 1.0})
    before = quality(r, "math problem 99")["sage"]
    policy.install_totals({})
    assert quality(r, "math problem 99")["sage"] == pytest.approx(before)
    assert "sage" not in policy.take_delta()  # the prior is this replica's base, never pushed


@pytest.mark.parametrize("kwargs, match", [
    ({"weights": {"calc": 1.0}, "model": "nobody"}, "unknown model 'nobody'"),
    ({"weights": {}}, "weights must name other models"),
    ({"weights": {"sage": 1.0}}, "weights must name other models"),
    ({"weights": {"ghost": 1.0}}, "weights must name other models"),
    ({"weights": {"calc": -1.0}}, "weights must be finite numbers >= 0"),
    ({"weights": {"calc": 0.0}}, "positive sum"),
    ({"weights": {"calc": 1.0}, "strength": 0}, "strength must be a finite number > 0"),
    ({"weights": {"calc": 1.0}, "offset": float("nan")}, "offset must be a finite number"),
])
def test_invalid_mix_prior(kwargs, match):
    kwargs = {"model": "sage", **kwargs}
    with pytest.raises(ConfigError, match=match):
        mix_prior(topic_router(), **kwargs)


@pytest.mark.parametrize("policy", ["shared-linucb", "random"])
def test_mix_prior_needs_a_per_model_ridge_policy(policy):
    r = Router(cards("calc", "bard"), policy=policy, encoder=topic_encoder(), seed=0)
    with pytest.raises(ConfigError, match="mix_prior needs shrunk-linucb, linucb"):
        mix_prior(r, "bard", {"calc": 1.0})


def test_quiz_mix_weights_the_model_that_answers_alike_and_measures_the_offset():
    weights, offset = quiz_mix([1, 1, 0, 1], {"calc": [1, 1, 0, 0], "bard": [0, 0, 1, 1]})
    assert weights["calc"] > 0.99 and offset == pytest.approx(0.75 - 0.5, abs=0.01)
    with pytest.raises(ConfigError, match="same 4 quiz prompts"):
        quiz_mix([1, 1, 0, 1], {"calc": [1, 0]})
    with pytest.raises(ConfigError, match=r"quiz scores must be finite numbers in \[0, 1\]"):
        quiz_mix([1, 1, 0, 2], {"calc": [1, 1, 0, 0]})
    with pytest.raises(ConfigError, match="temperature must be a finite number > 0"):
        quiz_mix([1], {"calc": [1]}, temperature=0)


def test_description_mix_weights_the_model_described_alike():
    described = [Model(n, input_cost_per_token=1e-6, output_cost_per_token=1e-6, description=d) for n, d in
                 [("calc", "math problem solver"), ("bard", "poem writer"), ("sage", "math problem tutor")]]
    r = Router(described, encoder=topic_encoder(), seed=0)
    weights = description_mix(r, "sage")
    assert set(weights) == {"calc", "bard"} and weights["calc"] > 0.99
    with pytest.raises(ConfigError, match="must be in the router and have a description"):
        description_mix(router(), "calc")


def test_onboard_with_known_quiz_scores_starts_the_model_like_the_one_it_answers_like():
    r = topic_router()
    r.remove_model("sage")
    quiz = MATH[:5] + POEMS[:5]
    known = {"calc": [0.9] * 5 + [0.1] * 5, "bard": [0.1] * 5 + [0.9] * 5}
    onboard(r, cards("sage")[0], quiz, lambda p, m: 1.0 if p.startswith("math") else 0.0, known=known)
    q = quality(r, "math problem 99")
    assert q["sage"] > q["calc"] - 0.05 and quality(r, "poem request 99")["sage"] < 0.2

"""OpenAI's `n` in the expected cost: a call asking for n answers is predicted, paced and logged at n answers'
cost (the prompt billed once), and a settled call teaches the cost model one answer's length, not n answers'."""

from __future__ import annotations

import numpy as np
import pytest

from bandit_router import Budget, Router
from bandit_router.costs import CostModel
from bandit_router.models import estimate_tokens

from .conftest import hashed_bow
from .test_costs import unpriced

PROMPT = "Write a haiku about the sea at night."
TOKENS = estimate_tokens(PROMPT)


def test_a_priced_prediction_counts_every_answer_and_the_prompt_once(cards):
    costs = CostModel(cards, expected_output_tokens=300)
    names = [c.name for c in cards]
    np.testing.assert_allclose(costs.predict(names, TOKENS, choices=4),
                               [c.cost(TOKENS, 4 * 300) for c in cards])
    np.testing.assert_allclose(costs.predict(names, TOKENS, max_tokens=10, choices=4),  # each answer capped
                               [c.cost(TOKENS, 4 * 10) for c in cards])


def test_a_settled_call_with_n_answers_teaches_one_answers_length(make_router):
    router = make_router()
    large = router.models["openai/large"]
    for _ in range(50):  # eight answers of 1,000 tokens each
        decision = router.route(PROMPT, models=["openai/large"], choices=8)
        router.settle(decision.route_id, large.cost(TOKENS, 8 * 1_000))
    one = router.route(PROMPT, models=["openai/large"])
    assert one.predicted_cost["openai/large"] == pytest.approx(large.cost(TOKENS, 1_000), rel=0.01)
    eight = router.route(PROMPT, models=["openai/large"], choices=8)
    assert eight.predicted_cost["openai/large"] == pytest.approx(large.cost(TOKENS, 8 * 1_000), rel=0.01)


def test_a_fallback_keeps_the_calls_n_for_learning(cards):
    costs = CostModel(cards, prior_weight=0.0, model_weight=0.0, bucket_weight=0.0)
    small, large = cards[0], cards[2]
    costs.routed("r1", large.name, TOKENS, choices=5)
    costs.served("r1", small.name)  # the large model failed; the small one answered all five
    assert costs.settle("r1", small.cost(TOKENS, 5 * 40))
    assert costs.predict([small.name], TOKENS)[0] == pytest.approx(small.cost(TOKENS, 40))


def test_an_unpriced_model_learns_its_cost_per_answer():
    router = Router(unpriced("a", "b"), encoder=hashed_bow, seed=0)
    for model, cost in (("a", 40.0), ("b", 300.0)):
        router.settle(router.route(PROMPT, models=[model], choices=4).route_id, 4 * cost)  # e.g. joules
    assert router.route(PROMPT).predicted_cost == {"a": 40.0, "b": 300.0}
    assert router.route(PROMPT, choices=3).predicted_cost == {"a": 120.0, "b": 900.0}


def test_pacing_counts_a_call_in_flight_at_its_n_answers(cards):
    router = Router(cards, encoder=hashed_bow, seed=0, budget=Budget(100.0))
    decision = router.route(PROMPT, models=["openai/medium"], choices=6)
    expected = router.models["openai/medium"].cost(TOKENS, 6 * 256)  # before any call: the default length each
    assert decision.predicted_cost["openai/medium"] == pytest.approx(expected)
    [(hold, _, _)] = router.gate.held.values()
    assert hold.expected == pytest.approx(expected) and hold.amount > hold.expected  # the cap: 6 x 4,000 tokens


def test_complete_predicts_and_logs_n_answers(make_router):
    router = make_router("random", log=":memory:")
    done = router.complete(PROMPT, n=3, max_tokens=20, mock_response="Waves fold the moonlight.")
    card = router.models[done.decision.model]
    assert done.decision.predicted_cost[card.name] == pytest.approx(card.cost(TOKENS, 3 * 20))
    [row] = router.log.rows()
    assert row["predicted_cost"] == pytest.approx(card.cost(TOKENS, 3 * 20))

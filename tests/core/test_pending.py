"""The pending buffer: decisions wait for feedback, bounded in number and in time; what expiry teaches."""

from __future__ import annotations

import gc
import time
import weakref

import numpy as np
import pytest

from bandit_router import FeedbackSettings
from bandit_router.errors import UnknownRouteError
from bandit_router.outcome import normalised_costs


def state_copy(router) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in router.policy.state().items()}


def states_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_max_pending_evicts_the_oldest(make_router):
    router = make_router(feedback=FeedbackSettings(max_pending=3))
    ids = [router.route(f"question number {i}").route_id for i in range(5)]
    assert [router.pending(i) for i in ids] == [False, False, True, True, True]
    with pytest.raises(UnknownRouteError, match="expired before feedback arrived"):
        router.feedback(ids[0], 1.0)
    router.feedback(ids[4], 1.0)  # the newest still takes feedback
    assert not router.pending(ids[4])


@pytest.mark.parametrize("expired_reward", [None, 0.0, 0.7])
def test_eviction_applies_expired_reward_only_when_set(make_router, expired_reward):
    router = make_router(feedback=FeedbackSettings(max_pending=1, expired_reward=expired_reward))
    first = router.route("What is 2+2?")
    before = state_copy(router)
    router.route("Write a poem.")  # evicts the first decision
    after = state_copy(router)
    if expired_reward is None:
        assert states_equal(before, after)
    else:
        k = router.policy.index(first.model)
        changed = [m for m in range(len(router.models)) if not np.array_equal(before["A"][m], after["A"][m])]
        assert changed == [k]  # the expired decision's model learned, and only it
        z = router.policy.features(router.encoder("What is 2+2?"))
        np.testing.assert_allclose(after["b"][k] - before["b"][k], expired_reward * z)


@pytest.mark.parametrize("expired_reward", [None, 0.25])
def test_ttl_expiry(make_router, expired_reward):
    router = make_router(feedback=FeedbackSettings(pending_ttl=0.05, expired_reward=expired_reward))
    decision = router.route("What is 2+2?")
    assert router.pending(decision.route_id)
    before = state_copy(router)
    time.sleep(0.1)
    assert not router.pending(decision.route_id)
    router.route("Another question")  # expiry is also swept when routing
    assert states_equal(before, state_copy(router)) is (expired_reward is None)
    with pytest.raises(UnknownRouteError, match="expired"):
        router.feedback(decision.route_id, 1.0)


def test_feedback_within_ttl_is_accepted(make_router):
    router = make_router(feedback=FeedbackSettings(pending_ttl=5.0))
    decision = router.route("What is 2+2?")
    router.feedback(decision.route_id, 0.5)
    assert not router.pending(decision.route_id)


def test_an_expired_decision_is_rewarded_once(make_router):
    """Expiry applies the default reward once, and later feedback on it is refused rather than counted again."""
    router = make_router(feedback=FeedbackSettings(max_pending=1, expired_reward=0.0))
    first = router.route("What is 2+2?")
    router.route("Write a poem.")
    after_expiry = state_copy(router)
    with pytest.raises(UnknownRouteError):
        router.feedback(first.route_id, 1.0)
    assert states_equal(after_expiry, state_copy(router))


@pytest.mark.parametrize("expired_reward", [None, 0.0])
def test_removing_a_model_drops_its_pending_decisions(make_router, expired_reward):
    router = make_router(policy="random", feedback=FeedbackSettings(expired_reward=expired_reward))
    pending = router.route("What is 2+2?", models=["openai/small"])
    other = router.route("Write a poem.", models=["openai/medium"])
    router.remove_model("openai/large")  # unrelated: both decisions still wait
    assert router.pending(pending.route_id) and router.pending(other.route_id)
    router.remove_model("openai/small")
    assert list(router.models) == router.policy.arms == ["openai/medium"]
    assert not router.pending(pending.route_id) and router.pending(other.route_id)
    with pytest.raises(UnknownRouteError, match="expired"):
        router.feedback(pending.route_id, 1.0)
    router.feedback(other.route_id, 1.0)


def test_removing_a_model_with_pending_feedback_keeps_learning_state_consistent(make_router):
    router = make_router("linucb", feedback=FeedbackSettings(expired_reward=0.0))
    decisions = [router.route(f"question {i}", models=["openai/small"]) for i in range(3)]
    router.remove_model("openai/small")
    assert router.policy.arms == list(router.models) == ["openai/medium", "openai/large"]
    assert all(len(v) == 2 for v in router.policy.state().values())
    assert not any(router.pending(d.route_id) for d in decisions)
    decision = router.route("question 4")
    router.feedback(decision.route_id, 1.0)


@pytest.mark.parametrize("fallback", [False, True])
def test_feedback_learns_the_routing_context_without_the_buffer_keeping_the_decision(make_router, fallback):
    router = make_router("shrunk-linucb")
    decision = router.route("What is 2+2?", cost_weight=0.3)
    served = next(m for m in decision.probabilities if m != decision.model) if fallback else decision.model
    names = list(decision.predicted_cost)
    expected_cost = normalised_costs(decision.predicted_cost.values())[names.index(served)]
    expected_propensity = decision.probabilities[served]
    route_id, alive = decision.route_id, weakref.ref(decision)
    del decision
    gc.collect()
    assert alive() is None  # the buffer keeps what learning needs, not the Decision and its three dicts
    if fallback:
        router.ledger.serve(route_id, served)
    learned = []
    router.policy.learn = learned.extend
    router.feedback(route_id, 0.8)
    (outcome,) = learned
    assert (outcome.model, outcome.reward, outcome.cost_weight) == (served, 0.8, 0.3)
    assert outcome.cost == pytest.approx(expected_cost) and outcome.propensity == pytest.approx(expected_propensity)

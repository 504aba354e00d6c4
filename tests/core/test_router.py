"""Router.route: predicted costs, eligibility, chat messages, offline observations and concurrent use."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from bandit_router import Limits, LogSettings, Router
from bandit_router.errors import ConfigError, NoEligibleModelError
from bandit_router.models import estimate_tokens

from .conftest import hashed_bow


def test_predicted_cost_is_prices_times_estimated_tokens(make_router):
    router = make_router(limits=Limits(expected_output_tokens=300))
    prompt = "Explain the difference between TCP and UDP in detail, please."
    decision = router.route(prompt)
    for name, card in router.models.items():
        assert decision.predicted_cost[name] == pytest.approx(card.cost(estimate_tokens(prompt), 300))
    capped = router.route(prompt, max_tokens=10)
    assert capped.predicted_cost["openai/large"] == pytest.approx(router.models["openai/large"].cost(
        estimate_tokens(prompt), 10))


def test_eligibility_by_tools_context_window_and_output_limit(make_router):
    router = make_router("random")
    assert set(router.route("hi", tools=True).probabilities) == {"openai/medium", "openai/large"}
    long_prompt = "word " * 4_000  # 5,000 estimated tokens: beyond the small model's 4,000-token window
    assert "openai/small" not in router.route(long_prompt).probabilities
    assert set(router.route("hi", max_tokens=2_000).probabilities) == {"openai/medium", "openai/large"}  # small: 1,000
    assert set(router.route("hi", max_tokens=5_000).probabilities) == {"openai/large"}  # medium: 4,000 output tokens
    assert set(router.route("hi", max_tokens=8_000).probabilities) == {"openai/large"}
    with pytest.raises(NoEligibleModelError, match=r"no allowed model supports tools \(allowed=\['openai/small'\]\)"):
        router.route("hi", models=["openai/small"], tools=True)
    with pytest.raises(NoEligibleModelError, match="no allowed model's context window holds .* max_tokens=200000"):
        router.route("hi", max_tokens=200_000)
    with pytest.raises(NoEligibleModelError, match=r"max_tokens=2000 is more than every allowed model may write"):
        router.route("hi", models=["openai/small"], max_tokens=2_000)
    for models, error in (("openai/small", r"must be a list of model names, got 'openai/small'; write \['openai"),
                          ([], "must name at least one model"),
                          (["openai/tiny"], r"contains unknown names \['openai/tiny'\]")):
        with pytest.raises(ConfigError, match=f"^models {error}"):
            router.route("hi", models=models)


def test_chat_messages_are_encoded_by_their_last_user_message(make_router):
    router = make_router(log=LogSettings(":memory:", store_vectors=True))
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is 2+2?"},
                {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3+3?"}]
    router.route(messages)
    [row] = router.log.rows()
    np.testing.assert_allclose(row["vector"], hashed_bow("And 3+3?"), rtol=1e-6)


def test_agent_steps_are_encoded_with_what_followed_the_last_user_message(make_router):
    router = make_router(log=LogSettings(":memory:", store_vectors=True))
    question = [{"role": "user", "content": "Weather in Paris?"}]
    call = {"role": "assistant", "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]}
    steps = [question, question + [call, {"role": "tool", "tool_call_id": "c1", "content": "rain, 12 C"}],
             question + [call, {"role": "tool", "tool_call_id": "c1", "content": "error: timeout"}]]
    for messages in steps:
        router.route(messages)
    vectors = [row["vector"] for row in router.log.rows()]
    np.testing.assert_allclose(vectors[0], hashed_bow("Weather in Paris?"), rtol=1e-6)
    np.testing.assert_allclose(vectors[1], hashed_bow("Weather in Paris?\nrain, 12 C"), rtol=1e-6)
    assert not np.allclose(vectors[1], vectors[2])


def test_observe_learns_like_feedback(make_router):
    observed, routed = make_router("linucb"), make_router("linucb")
    observed.observe("What is 2+2?", "openai/small", 0.9)
    decision = routed.route("What is 2+2?", models=["openai/small"])
    routed.feedback(decision.route_id, 0.9)
    for key, value in observed.policy.state().items():
        np.testing.assert_allclose(value, routed.policy.state()[key])


def test_concurrent_routing_and_feedback_lose_no_update(make_router):
    router = make_router("linucb", policy_settings={"regularization": 1.0})
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(100):
                decision = router.route(f"worker {worker} question {i % 7}")
                router.feedback(decision.route_id, (i % 10) / 10)
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    A = router.policy.state()["A"]
    assert A[:, -1, -1].sum() - len(router.models) * 1.0 == pytest.approx(400)  # intercept: one count per update


def test_routers_with_the_same_seed_but_different_encoders_still_work(cards):
    """A custom encoder of another dimension builds a policy of that dimension."""
    router = Router(cards, encoder=lambda text: hashed_bow(text, dim=8), seed=0)
    assert router.policy.dim == 8
    router.feedback(router.route("hi").route_id, 1.0)

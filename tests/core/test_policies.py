"""Every registered policy, driven through the real Router: valid choices, propensities, learning, state, seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bandit_router import Decision, Model, Router
from bandit_router.errors import ConfigError, NoEligibleModelError

from .conftest import ALL_POLICIES, NON_LEARNING, hashed_bow

PROMPTS = [
    "What is 2+2?", "Prove that there are infinitely many primes.", "Write a haiku about autumn rain.",
    "Translate 'good morning' into French.", "Summarise the plot of Hamlet in two sentences.",
    "Write a Python function that reverses a linked list.", "What is the capital of Australia?",
    "Explain the difference between TCP and UDP.", "Solve x^2 - 5x + 6 = 0.", "Give three synonyms for happy.",
]
SUBSETS = [None, ["openai/medium", "openai/large"], ["openai/medium"], ["openai/small", "openai/medium"]]


def score_of(model: str, prompt: str) -> float:
    """A deterministic outcome that depends on the model and the prompt."""
    base = {"openai/small": 0.2, "openai/medium": 0.6, "openai/large": 0.9}.get(model, 0.5)
    return base * (0.5 + 0.5 * ("2" in prompt))


def signature(decision: Decision) -> tuple:
    """Everything a decision says except its random route_id and its timestamp."""
    return (decision.model, decision.propensity, decision.cost_weight, dict(decision.probabilities),
            {k: (None if math.isnan(v) else v) for k, v in decision.predicted_quality.items()},
            dict(decision.predicted_cost))


def drive(router: Router, rounds: int, offset: int = 0) -> list[tuple]:
    """Route `rounds` prompts under changing dials and subsets, rewarding each; the decisions' signatures."""
    out = []
    for i in range(offset, offset + rounds):
        prompt = PROMPTS[i % len(PROMPTS)] + f" (case {i})"
        decision = router.route(prompt, cost_weight=(i % 5) / 4, models=SUBSETS[i % len(SUBSETS)])
        router.feedback(decision.route_id, score_of(decision.model, prompt))
        out.append(signature(decision))
    return out


@pytest.mark.parametrize("policy", ALL_POLICIES)
def test_choice_is_an_eligible_model_with_its_propensity(policy, make_router):
    router = make_router(policy)
    for i in range(40):
        subset = SUBSETS[i % len(SUBSETS)]
        tools = i % 3 == 0
        decision = router.route(PROMPTS[i % len(PROMPTS)], cost_weight=(i % 5) / 4, models=subset, tools=tools)
        eligible = [m for m in router.models if (subset is None or m in subset)
                    and (not tools or router.models[m].supports_tools)]
        assert set(decision.probabilities) == set(eligible)
        assert decision.model in eligible
        assert set(decision.predicted_quality) == set(decision.predicted_cost) == set(eligible)
        assert all(p >= 0 for p in decision.probabilities.values())
        assert sum(decision.probabilities.values()) == pytest.approx(1.0, abs=1e-9)
        assert decision.propensity == decision.probabilities[decision.model] > 0
        assert decision.ranking()[0] == decision.model and sorted(decision.ranking()) == sorted(eligible)
        router.feedback(decision.route_id, score_of(decision.model, PROMPTS[i % len(PROMPTS)]))


@pytest.mark.parametrize("policy", ALL_POLICIES)
def test_feedback_updates_learning_state(policy, make_router):
    router = make_router(policy)
    before = {k: v.copy() for k, v in router.policy.state().items()}
    decision = router.route("What is 2+2?")
    router.feedback(decision.route_id, 1.0)
    again = router.route("What is 2+2?", models=[decision.model])
    assert not router.pending(decision.route_id)
    after = router.policy.state()
    if policy in NON_LEARNING:
        assert before == after == {}
        return
    assert before, f"learning policy {policy!r} exposes no state"
    assert set(before) == set(after)
    assert any(not np.array_equal(before[k], after[k]) for k in before)
    quality = decision.predicted_quality[decision.model], again.predicted_quality[decision.model]
    if not math.isnan(quality[0]):  # a policy that predicts quality predicts a higher one after a reward of 1
        assert quality[1] > quality[0]


@pytest.mark.parametrize("policy", ALL_POLICIES)
def test_save_then_load_gives_identical_decisions(policy, make_router, tmp_path):
    router = make_router(policy, cost_weight=0.3)
    drive(router, 30)
    path = tmp_path / "router.safetensors"
    router.save(path)
    loaded = Router.load(path, encoder=hashed_bow)
    assert type(loaded.policy) is type(router.policy)
    assert list(loaded.models) == list(router.models) and loaded.cost_weight == 0.3
    for key, value in router.policy.state().items():
        np.testing.assert_array_equal(loaded.policy.state()[key], value)
    assert drive(loaded, 40, offset=30) == drive(router, 40, offset=30)


def test_a_seed_given_to_load_draws_afresh_from_it(make_router, tmp_path):
    router = make_router("thompson")
    drive(router, 30)
    router.save(tmp_path / "router.safetensors")
    runs = [drive(Router.load(tmp_path / "router.safetensors", encoder=hashed_bow, seed=seed), 40, offset=30)
            for seed in (5, 5, 123)]
    assert runs[0] == runs[1] != runs[2]
    assert Router.load(tmp_path / "router.safetensors", encoder=hashed_bow, seed=5).seed == 5


def test_load_changes_the_settings_the_learned_state_does_not_depend_on(make_router, tmp_path):
    router = make_router("shrunk-linucb", cost_weight=0.3)
    drive(router, 30)
    router.save(tmp_path / "r.safetensors")
    kept = Router.load(tmp_path / "r.safetensors", encoder=hashed_bow)
    changed = Router.load(tmp_path / "r.safetensors", encoder=hashed_bow,
                          policy_settings={"exploration": 0.0, "dial_spread": 0.0})
    assert (changed.policy.config.exploration, changed.policy.config.dial_spread) == (0.0, 0.0)
    assert kept.policy.config.exploration == router.policy.config.exploration > 0
    for key, value in router.policy.state().items():  # the same learned state, routed by the new settings
        np.testing.assert_array_equal(changed.policy.state()[key], value)
    prompt = PROMPTS[1] + " (case 99)"
    assert sorted(changed.route(prompt).probabilities.values())[-1] == 1.0  # no dithering, no exploration share
    assert max(kept.route(prompt).probabilities.values()) < 1.0
    with pytest.raises(ConfigError, match=r"\['regularization'\] cannot change when a router is loaded.*exploration"):
        Router.load(tmp_path / "r.safetensors", encoder=hashed_bow, policy_settings={"regularization": 3.0})
    with pytest.raises(ConfigError, match="unknown settings"):
        Router.load(tmp_path / "r.safetensors", encoder=hashed_bow, policy_settings={"explore": 0.0})
    same = Router.load(tmp_path / "r.safetensors", encoder=hashed_bow,  # the saved value is no change
                       policy_settings={"regularization": router.policy.config.regularization})
    assert same.policy.config == router.policy.config


@pytest.mark.parametrize("policy, free, fixed", [("hierlin", {"alpha": 0.1}, {"clusters": 8}),
                                                ("barp", {"learn": False, "inference": "argmax"}, {"hidden": 8})])
def test_load_changes_only_what_each_policy_declares_free(make_router, tmp_path, policy, free, fixed):
    make_router(policy).save(tmp_path / "r.safetensors")
    loaded = Router.load(tmp_path / "r.safetensors", encoder=hashed_bow, policy_settings=free)
    assert {k: getattr(loaded.policy.config, k) for k in free} == free
    with pytest.raises(ConfigError, match=f"\\['{next(iter(fixed))}'\\] cannot change when a router is loaded"):
        Router.load(tmp_path / "r.safetensors", encoder=hashed_bow, policy_settings=fixed)


@pytest.mark.parametrize("policy", ALL_POLICIES)
def test_state_settings_name_fields(policy):
    from dataclasses import fields

    from bandit_router.policies import policy_class

    config = policy_class(policy).Config
    assert config.STATE_SETTINGS is None or config.STATE_SETTINGS <= {f.name for f in fields(config)}


def test_a_config_that_declares_no_state_settings_keeps_every_setting():
    from dataclasses import dataclass

    from bandit_router.policies import PolicyConfig

    @dataclass(frozen=True)
    class Toy(PolicyConfig):
        rate: float = 1.0

    assert Toy.reloaded({"rate": 2.0}, {"rate": 2.0}) == {"rate": 2.0}  # the saved value is no change
    with pytest.raises(ConfigError, match=r"\['rate'\] cannot change .*settings that can: none"):
        Toy.reloaded({"rate": 2.0}, {"rate": 3.0})


@pytest.mark.parametrize("policy", ALL_POLICIES)
def test_a_fixed_seed_gives_identical_runs(policy, make_router):
    assert drive(make_router(policy, seed=7), 60) == drive(make_router(policy, seed=7), 60)


def test_different_seeds_give_different_random_runs(make_router):
    assert drive(make_router("random", seed=1), 60) != drive(make_router("random", seed=2), 60)


@pytest.mark.parametrize("policy", ALL_POLICIES)
def test_add_and_remove_models_at_run_time(policy, make_router, tmp_path):
    router = make_router(policy)
    drive(router, 10)
    router.add_model(Model("openai/new", input_cost_per_token=2e-6, output_cost_per_token=2e-6))
    if policy == "fixed":  # it never leaves its model, even for a subset without it
        with pytest.raises(NoEligibleModelError, match="fixed model 'openai/medium'"):
            router.route("What is 2+2?", models=["openai/new"])
    else:
        decision = router.route("What is 2+2?", models=["openai/new"])
        assert decision.model == "openai/new" and decision.propensity == 1.0
        router.feedback(decision.route_id, 0.8)
    assert "openai/new" in router.route("What is 2+2?", models=["openai/new", "openai/medium"]).probabilities
    router.save(tmp_path / "r.safetensors")
    assert "openai/new" in Router.load(tmp_path / "r.safetensors", encoder=hashed_bow).models

    router.remove_model("openai/large")
    assert "openai/large" not in router.models and "openai/large" not in router.policy.arms
    for prompt in PROMPTS:
        decision = router.route(prompt)
        assert "openai/large" not in decision.probabilities
        assert sum(decision.probabilities.values()) == pytest.approx(1.0)
        router.feedback(decision.route_id, score_of(decision.model, prompt))
    with pytest.raises(ConfigError, match="unknown names"):
        router.route("hi", models=["openai/large"])
    with pytest.raises(ConfigError, match="already in the router"):
        router.add_model(router.models["openai/small"])


def test_learning_policies_prefer_the_better_model(make_router):
    """With quality only (dial 0) and a clear winner, LinUCB settles on it."""
    router = make_router("linucb")
    for i in range(200):
        decision = router.route(PROMPTS[i % len(PROMPTS)])
        scores = {"openai/small": 0.1, "openai/medium": 0.4, "openai/large": 0.9}
        router.feedback(decision.route_id, scores[decision.model])
    choices = [router.route(p).model for p in PROMPTS]
    assert choices.count("openai/large") == len(PROMPTS)


def test_the_dial_trades_quality_for_cost(make_router):
    """One learned state serves every dial: at dial 1 the cheap model wins where quality alone picks the large one."""
    router = make_router("linucb", policy_settings={"alpha": 0.0})
    for prompt in PROMPTS:
        for model, score in (("openai/small", 0.7), ("openai/medium", 0.75), ("openai/large", 0.8)):
            for _ in range(5):
                router.observe(prompt, model, score)
    assert router.route(PROMPTS[0], cost_weight=0.0).model == "openai/large"
    assert router.route(PROMPTS[0], cost_weight=1.0).model == "openai/small"

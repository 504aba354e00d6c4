"""Shrunk LinUCB: per-model ridge statistics under a prior that shrinks prompt weights harder than the mean."""

from __future__ import annotations

import numpy as np
import pytest

from bandit_router.errors import ConfigError
from bandit_router.outcome import Outcome
from bandit_router.policies import make_policy
from bandit_router.policies.shrunk import ShrunkLinUCB

ARMS = ["cheap", "strong"]


def _data(n: int = 200, dim: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dim)) / np.sqrt(dim)
    rewards = np.column_stack([0.4 + 0.3 * X[:, 0], 0.7 - 0.3 * X[:, 0]])
    return X, np.clip(rewards + rng.normal(0, 0.05, size=rewards.shape), 0, 1)


def _policy(**settings) -> ShrunkLinUCB:
    policy = make_policy("shrunk-linucb", 6, ARMS, seed=0, **settings)
    assert isinstance(policy, ShrunkLinUCB)
    return policy


def test_prior_shrinks_prompt_weights_harder_than_the_intercept() -> None:
    policy = _policy(regularization=1.0, prompt_regularization=50.0)
    np.testing.assert_allclose(np.diag(policy.A[0]), [50.0] * 6 + [1.0])
    x = np.ones(6) / np.sqrt(6)
    for _ in range(20):
        policy.learn([Outcome(x, "strong", 0.9)])
    theta = policy.theta[policy.index("strong")]
    assert theta[-1] > 0.7 and np.abs(theta[:-1]).max() < 0.05  # the mean carries the rating, not the prompt
    plain = make_policy("linucb", 6, ARMS)
    for _ in range(20):
        plain.learn([Outcome(x, "strong", 0.9)])
    assert plain.theta[plain.index("strong")][-1] < theta[-1]  # lambda I splits it across the prompt weights


@pytest.mark.parametrize("settings, match", [({"prompt_regularization": 0.0}, "prompt_regularization"),
                                             ({"alpha": -1.0}, "alpha"), ({"temperature": float("nan")}, "temperature"),
                                             ({"intercept": False}, "intercept")])
def test_invalid_settings_are_named(settings: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _policy(**settings)


def test_weighted_outcome_counts_as_that_many_ratings() -> None:
    X, R = _data(20)
    once, twice = _policy(), _policy()
    once.learn([Outcome(x, "cheap", float(r), weight=2.0) for x, r in zip(X, R[:, 0])])
    for x, r in zip(X, R[:, 0]):
        twice.learn([Outcome(x, "cheap", float(r))])
        twice.learn([Outcome(x, "cheap", float(r), 0.1, 0.0, 1.0)])
    for key in ("A", "A_inv", "b"):
        np.testing.assert_allclose(once.state()[key], twice.state()[key], atol=1e-9)
    with pytest.raises(ConfigError, match="weight"):
        once.learn([Outcome(X[0], "cheap", 0.5, weight=0.0)])


def test_replicas_merge_to_the_policy_that_saw_every_rating() -> None:
    X, R = _data(120)
    a, b, alone = _policy(), _policy(), _policy()
    a.share()
    b.share()
    for i, (x, r) in enumerate(zip(X, R)):
        arm = i % 2
        (a if i < 60 else b).learn([Outcome(x, ARMS[arm], float(r[arm]))])
        alone.learn([Outcome(x, ARMS[arm], float(r[arm]))])
    deltas = [a.take_delta(), b.take_delta()]
    totals = {arm: {k: sum(d[arm][k] for d in deltas) for k in ("A", "b")} for arm in ARMS}
    a.install_totals(totals)
    for key in ("A", "b"):
        np.testing.assert_allclose(a.state()[key], alone.state()[key], atol=1e-9)
    np.testing.assert_allclose(a.predict(X[0], [0, 1])[0], alone.predict(X[0], [0, 1])[0], atol=1e-9)


def _learned(**settings) -> ShrunkLinUCB:
    """cheap scores 0.4 + 0.3 x[0], strong 0.7 - 0.3 x[0], both rated on 600 prompts."""
    X, R = _data(600)
    policy = _policy(prompt_regularization=5.0, **settings)
    policy.learn([Outcome(x, arm, float(r)) for x, row in zip(X, R) for arm, r in zip(ARMS, row)])
    return policy


def test_learns_the_context_and_the_dial_trades_quality_for_cost() -> None:
    policy = _learned(dial_spread=0.0, exploration=0.0)
    cost = np.array([0.1, 1.0])
    x_cheap_wins = np.zeros(6)
    x_cheap_wins[0] = 2.0  # 0.4 + 0.6 > 0.7 - 0.6
    assert policy.probabilities(x_cheap_wins, [0, 1], cost, 0.0)[0].tolist() == [1.0, 0.0]
    assert policy.probabilities(np.zeros(6), [0, 1], cost, 0.0)[0].tolist() == [0.0, 1.0]
    assert policy.probabilities(np.zeros(6), [0, 1], cost, 0.5)[0].tolist() == [1.0, 0.0]


def test_dithered_dial_moves_the_choice_smoothly() -> None:
    """At x = 0 strong is worth 0.3 more and costs 0.9 more: a fixed dial switches every request at 1/3."""
    cost, x = np.array([0.1, 1.0]), np.zeros(6)
    dials = np.linspace(0.0, 1.0, 21)
    fixed, dithered = _learned(dial_spread=0.0, exploration=0.0), _learned(exploration=0.0)
    strong = {name: np.array([p.probabilities(x, [0, 1], cost, d)[0][1] for d in dials])
              for name, p in (("fixed", fixed), ("dithered", dithered))}
    assert np.abs(np.diff(strong["fixed"])).max() == 1.0  # the cliff
    assert (np.diff(strong["dithered"]) <= 1e-12).all()  # falls as the dial rises ...
    assert np.abs(np.diff(strong["dithered"])).max() <= 0.25  # ... in steps of at most 4 of the 16 trade-offs
    assert strong["dithered"][0] == 1.0 and 0.0 < strong["dithered"][6] < 1.0  # dial 0.3: a split, not a switch
    probs = dithered.probabilities(x, [0, 1], cost, 0.3)[0]
    assert probs.sum() == pytest.approx(1.0) and np.allclose(probs * 16, np.round(probs * 16))  # 16 trade-offs


@pytest.mark.parametrize("exploration", [1.0, 0.0])
def test_exploration_spreads_a_share_over_the_models_not_clearly_worse(exploration: float) -> None:
    policy = make_policy("shrunk-linucb", 6, ["strong", "close", "poor"], seed=0, dial_spread=0.0,
                         exploration=exploration)
    x = np.zeros(6)
    for arm, rating in (("strong", 0.8), ("close", 0.7), ("poor", 0.0)):
        for _ in range(15):
            policy.learn([Outcome(x, arm, rating)])
    share = min(0.2, exploration / np.sqrt(1 + policy.ratings.sum()))  # 45 ratings: 1 / sqrt(46) = 0.147
    probs, _ = policy.probabilities(x, [0, 1, 2], np.zeros(3), 0.0)
    np.testing.assert_allclose(probs, [1 - share / 2, share / 2, 0.0])  # poor is clearly worse: not explored
    for _ in range(300):
        policy.learn([Outcome(x, "strong", 0.8)])
    later, _ = policy.probabilities(x, [0, 1, 2], np.zeros(3), 0.0)
    assert later[1] == pytest.approx(min(0.2, exploration / np.sqrt(346)) / 2)  # the share falls with the ratings
    assert (later[1] < probs[1]) == bool(exploration)
    dear, _ = policy.probabilities(x, [0, 1, 2], np.array([0.0, 1.0, 0.0]), 0.5)
    assert dear.tolist() == [1.0, 0.0, 0.0]  # at dial 0.5 close is worth 0.5 less than strong: not explored


def test_temperature_splits_near_ties_at_random() -> None:
    policy = _policy(temperature=0.05, min_ratings=0)
    probs, _ = policy.probabilities(np.zeros(6), [0, 1], np.array([0.0, 0.02]), 1.0)
    assert probs.sum() == pytest.approx(1.0) and 0.5 < probs[0] < 0.7  # utilities 0.02 apart: e^0.4 : 1


def _topic_router(**settings):
    from bandit_router.encoders import Encoder
    from bandit_router.models import Model
    from bandit_router.router import Router

    def embed(texts: list[str]) -> np.ndarray:
        return np.array([[1.0, 0.0, 0.0] if "math" in t else [0.0, 1.0, 0.0] for t in texts], dtype=np.float32)

    models = [Model(n, input_cost_per_token=1e-6, output_cost_per_token=1e-6) for n in ("calc", "bard")]
    return Router(models, policy="shrunk-linucb", policy_settings=settings, encoder=Encoder(embed, name="topic", dim=3),
                  seed=0)


def test_priors_write_into_its_statistics_and_count_as_ratings() -> None:
    from bandit_router.models import Model
    from bandit_router.priors import mix_prior, table_prior

    r = _topic_router(alpha=0.1, prompt_regularization=1.0)
    prompts = [f"math problem {i}" for i in range(20)] + [f"poem request {i}" for i in range(20)]
    table_prior(r, prompts, np.array([[1.0, 0.0]] * 20 + [[0.0, 1.0]] * 20), ["calc", "bard"])
    assert r.route("math problem 99").model == "calc" and r.route("poem request 99").model == "bard"
    assert r.policy.ratings.tolist() == pytest.approx([40.0, 40.0])  # no forced exploration after a prior
    r.add_model(Model("sage", input_cost_per_token=1e-6, output_cost_per_token=1e-6))
    assert r.route("poem request 99").model == "sage"  # not rated yet: tried first
    mix_prior(r, "sage", {"bard": 1.0}, offset=0.05)
    q = r.route("poem request 99").predicted_quality
    assert q["sage"] == pytest.approx(q["bard"] + 0.05)


def test_empirical_bayes_frees_the_prompt_weights_only_where_the_prompt_explains_the_ratings() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(600, 6)) / np.sqrt(6)
    policy = _policy(prompt_regularization=30.0)
    for x in X:
        policy.learn([Outcome(x, "cheap", float(rng.random() < 0.5))])  # a coin: the prompt says nothing
        policy.learn([Outcome(x, "strong", float(x[0] > 0))])  # decided by the prompt
    cheap, strong = policy.prompt_precision
    assert cheap >= 30.0 and strong <= 3.0  # re-chosen after 256, 512 and 1024 ratings
    assert policy.predict(X[0], [1])[0][0] == pytest.approx(float(policy.theta[1] @ np.append(X[0], 1.0)))
    fixed = _policy(prompt_regularization=30.0, empirical_bayes=False)
    for x in X[:300]:
        fixed.learn([Outcome(x, "strong", float(x[0] > 0))])
    assert fixed.prompt_precision.tolist() == [30.0, 30.0]


def test_state_round_trip_keeps_the_chosen_precisions() -> None:
    X, R = _data(400)
    policy = _policy()
    policy.learn([Outcome(x, arm, float(r)) for x, row in zip(X, R) for arm, r in zip(ARMS, row)])
    copy = _policy()
    copy.load_state(policy.state())
    np.testing.assert_array_equal(copy.prompt_precision, policy.prompt_precision)
    np.testing.assert_allclose(copy.predict(X[0], [0, 1])[0], policy.predict(X[0], [0, 1])[0], atol=1e-12)


@pytest.mark.parametrize("ratings, elimination, tried", [
    ([0.0, 0.0, 0.0], 1.0, False),  # three zeros against a mean of 0.6: clearly worse, its first tries end
    ([0.0, 0.0, 0.0], 0.0, True),  # ... unless elimination is off
    ([0.0, 0.0], 1.0, True),  # two ratings are not enough to tell
    ([0.7, 0.7, 0.7], 1.0, True),  # within reach of the leader: tried on
])
def test_first_tries_stop_early_for_a_clearly_worse_model(ratings: list[float], elimination: float,
                                                          tried: bool) -> None:
    policy = _policy(elimination=elimination, dial_spread=0.0, exploration=0.0)
    x = np.zeros(6)
    for _ in range(10):
        policy.learn([Outcome(x, "strong", 0.6)])
    for rating in ratings:
        policy.learn([Outcome(x, "cheap", rating)])
    probs, _ = policy.probabilities(x, [0, 1], np.array([0.5, 0.5]), 0.0)
    assert probs[0] == (1.0 if tried else 0.0)


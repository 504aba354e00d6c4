"""HierLin: the block-form posterior equals the dense joint one, learning, state round trips, arms at run time."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hashlib
import re

import numpy as np
import pytest

from bandit_router import Model, Router
from bandit_router.errors import ConfigError
from bandit_router.outcome import Outcome
from bandit_router.policies import make_policy
from bandit_router.policies.hierlin import HierLin

DIM = 12
ARMS = ["a", "b", "c"]
SMALL = {"pca_dims": 4, "clusters": 3, "refit_start": 10, "refit_every": 20, "new_cluster_similarity": 0.3}


def encode(text: str) -> np.ndarray:
    """Seeded hashed bag of words, normalised: similar prompts share buckets."""
    vector = np.zeros(DIM)
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=2).digest()
        vector[digest[0] % DIM] += 1.0 if digest[1] % 2 else -1.0
    vector[0] += 1.0
    return vector / np.linalg.norm(vector)


def stream(n: int, seed: int = 0) -> list[tuple[np.ndarray, int, float]]:
    """(prompt vector, model index, rating) triples; ratings depend on the model and the prompt."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = rng.standard_normal(DIM)
        x /= np.linalg.norm(x)
        a = int(rng.integers(len(ARMS)))
        out.append((x, a, float(np.clip(0.3 + 0.2 * a + 0.3 * x[0] * (a - 1), 0, 1))))
    return out


def trained(n: int, **settings) -> HierLin:
    policy = make_policy("hierlin", DIM, ARMS, seed=0, **{**SMALL, **settings})
    for x, a, r in stream(n):
        policy.learn([Outcome(x, ARMS[a], r)])
    return policy


def dense_prediction(policy: HierLin, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sd of z . (theta_0 + delta_a) from the joint posterior over (theta_0, delta_1..K), inverted densely."""
    policy.state()  # adds buffered ratings to the raw sums
    c, q, K, d, p = policy.config, policy.q, len(policy.arms), DIM, policy.p
    T = np.zeros((q, 1 + d + policy.k))
    T[0, 0], T[1 + p :, 1 + d :] = 1, np.eye(policy.k)
    T[1 : 1 + p, 0], T[1 : 1 + p, 1 : 1 + d] = policy.pca_offset, policy.pca_w
    prior_var = np.r_[c.shared_intercept_var, [c.shared_pca_var] * p, [c.shared_cluster_var] * policy.k,
                      np.tile(np.r_[c.model_intercept_var, [c.model_pca_var] * p, [c.model_cluster_var] * policy.k], K)]
    precision, info = np.diag(1 / prior_var), np.zeros((K + 1) * q)
    info[0] = c.prior_quality / c.shared_intercept_var
    for a in range(K):
        Z, h = T @ policy.raw_xx[a] @ T.T / c.noise, T @ policy.raw_xr[a] / c.noise
        s = slice((a + 1) * q, (a + 2) * q)
        for r1 in (slice(0, q), s):
            info[r1] += h
            for r2 in (slice(0, q), s):
                precision[r1, r2] += Z
    cov = np.linalg.inv(precision)
    mean = cov @ info
    z = policy._code(x, policy._cluster(x))
    means, sds = [], []
    for a in range(K):
        g = np.zeros((K + 1) * q)
        g[:q], g[(a + 1) * q : (a + 2) * q] = z, z
        means.append(g @ mean)
        sds.append(np.sqrt(g @ cov @ g))
    return np.array(means), np.array(sds)


@pytest.mark.parametrize("n", [5, 10, 37, 95])  # before the first PCA fit, at it, after refits plus rank-1 updates
def test_block_posterior_equals_the_dense_joint_posterior(n):
    policy = trained(n)
    for x, _, _ in stream(5, seed=1):
        mean, sd = policy.predict(x, range(len(ARMS)))
        dense_mean, dense_sd = dense_prediction(policy, x)
        np.testing.assert_allclose(mean, dense_mean, atol=1e-10)
        np.testing.assert_allclose(sd, dense_sd, atol=1e-10)


def test_an_update_changes_the_posterior_of_the_rated_model_and_the_shared_part():
    policy = trained(30)
    before = {k: v.copy() for k, v in policy.state().items()}
    x, _, _ = stream(1, seed=2)[0]
    policy.learn([Outcome(x, "b", 1.0)])
    after = policy.state()
    for key in ("cov", "mean"):
        assert not np.array_equal(after[key][1], before[key][1])
        np.testing.assert_array_equal(after[key][[0, 2]], before[key][[0, 2]])
    assert not np.array_equal(after["shared_cov"], before["shared_cov"])
    assert not np.array_equal(after["shared_info"], before["shared_info"])
    assert after["counters"][0] == before["counters"][0] + 1


def test_ratings_move_the_prediction_toward_them():
    policy = make_policy("hierlin", DIM, ARMS, seed=0, **SMALL)
    x = stream(1)[0][0]
    start = policy.predict(x, [0, 1])
    for _ in range(20):
        policy.learn([Outcome(x, "a", 1.0)])
        policy.learn([Outcome(x, "b", 0.0)])
    mean, sd = policy.predict(x, [0, 1])
    assert mean[0] > 0.9 and mean[1] < 0.1 and np.all(sd < start[1])


def test_choice_is_the_ucb_argmax_with_ties_split():
    policy = trained(40)
    x = stream(1, seed=3)[0][0]
    mean, sd = policy.predict(x, [0, 1, 2])
    cost = np.array([0.0, 0.5, 1.0])
    probs, quality = policy.probabilities(x, [0, 1, 2], cost, 0.2)
    np.testing.assert_array_equal(quality, mean)
    assert probs.tolist() == np.eye(3)[np.argmax(mean + sd - 0.2 * cost)].tolist()
    fresh = make_policy("hierlin", DIM, ARMS, seed=0)
    np.testing.assert_array_equal(fresh.probabilities(x, [0, 1, 2], np.zeros(3), 0.5)[0], np.full(3, 1 / 3))


def test_a_new_model_starts_from_what_all_models_share():
    policy = make_policy("hierlin", DIM, ARMS, seed=0, **SMALL)
    for x, a, _ in stream(60):
        policy.learn([Outcome(x, ARMS[a], 0.9)])  # every model is good on every prompt
    x = stream(1, seed=4)[0][0]
    before = policy.predict(x, [0, 1, 2])
    policy.add_arm("new")
    mean, sd = policy.predict(x, [0, 1, 2, 3])
    np.testing.assert_array_equal(mean[:3], before[0])
    np.testing.assert_array_equal(sd[:3], before[1])
    assert mean[3] > 0.75  # the prior says 0.5; the shared part learned that prompts get 0.9
    assert sd[3] > sd[:3].max()
    np.testing.assert_allclose([mean[3]], dense_prediction(policy, x)[0][3:], atol=1e-10)
    policy.learn([Outcome(x, "new", 0.2)])
    assert policy.predict(x, [3])[0][0] < mean[3]


def test_removing_a_model_forgets_its_ratings():
    settings = {"pca_dims": 0, "clusters": 0}  # a code without the PCA and centres, which keep the removed prompts
    policy = trained(50, **settings)
    policy.remove_arm("b")
    without = make_policy("hierlin", DIM, ["a", "c"], seed=0, **{**SMALL, **settings})
    for x, a, r in stream(50):
        if a != 1:
            without.learn([Outcome(x, ARMS[a], r)])
    x = stream(1, seed=5)[0][0]
    for got, want in zip(policy.predict(x, [0, 1]), without.predict(x, [0, 1])):
        np.testing.assert_allclose(got, want, atol=1e-10)
    assert policy.arms == ["a", "c"] and policy.cov.shape[0] == 2


def router(seed: int = 0) -> Router:
    cards = [Model(f"openai/m{i}", input_cost_per_token=10.0**i * 1e-7, output_cost_per_token=4 * 10.0**i * 1e-7)
             for i in range(3)]
    return Router(cards, policy="hierlin", policy_settings=SMALL, encoder=encode, seed=seed)


def drive(r: Router, rounds: int, offset: int = 0) -> list[tuple]:
    """Route and rate `rounds` prompts; each decision's model, probabilities and predicted quality."""
    out = []
    for i in range(offset, offset + rounds):
        prompt = f"question {i % 7} about topic {i % 5} and item {i}"
        decision = r.route(prompt, cost_weight=(i % 4) / 4)
        r.feedback(decision.route_id, 0.2 + 0.25 * int(decision.model[-1]) * (i % 2))
        out.append((decision.model, decision.probabilities, decision.predicted_quality))
    return out


def test_save_then_load_gives_identical_decisions(tmp_path):
    original = router()
    drive(original, 45)  # past refits, with ratings still buffered
    original.save(tmp_path / "r.safetensors")
    loaded = Router.load(tmp_path / "r.safetensors", encoder=encode)
    assert isinstance(loaded.policy, HierLin) and loaded.policy.config == original.policy.config
    for key, value in original.policy.state().items():
        np.testing.assert_array_equal(loaded.policy.state()[key], value)
    assert drive(loaded, 60, offset=45) == drive(original, 60, offset=45)  # crosses the refit at 70


def test_a_fixed_seed_gives_identical_runs():
    assert drive(router(seed=3), 50) == drive(router(seed=3), 50)


def test_a_model_added_to_the_router_is_routed_to_and_learned():
    r = router()
    drive(r, 30)
    r.add_model(Model("openai/m3", input_cost_per_token=1e-7, output_cost_per_token=4e-7))
    chosen = [model for model, _, _ in drive(r, 20, offset=30)]
    assert "openai/m3" in chosen  # cold, so its bonus is the widest: UCB tries it
    assert r.policy.cov.shape[0] == 4


@pytest.mark.parametrize("field, value, message", [
    ("alpha", -0.1, "alpha must be a finite number >= 0"),
    ("pca_dims", -1, r"pca_dims must be an integer in \[0, 1024\]"),
    ("clusters", 2.5, "clusters must be an int"),
    ("refit_start", 1, r"refit_start must be an integer in \[2, "),
    ("noise", 0.0, "noise must be a finite number > 0"),
    ("model_pca_var", float("inf"), "model_pca_var must be a finite number > 0"),
    ("new_cluster_similarity", float("nan"), "new_cluster_similarity must be a finite number"),
])
def test_invalid_settings_name_the_field(field, value, message):
    with pytest.raises(ConfigError, match=message):
        make_policy("hierlin", DIM, ARMS, **{field: value})


def test_a_vector_of_the_wrong_size_is_refused():
    policy = make_policy("hierlin", DIM, ARMS)
    with pytest.raises(ConfigError, match=r"prompt vector has shape \(5,\), expected \(12,\)"):
        policy.learn([Outcome(np.ones(5), "a", 1.0)])

"""LinUCB against random on a synthetic linear bandit, driven through the real Router."""

from __future__ import annotations

import numpy as np

from bandit_router import Encoder, Model, Router

D, K, ROUNDS = 8, 5, 5_000


def regret(policy: str, seed: int = 0) -> float:
    """Cumulative pseudo-regret of `policy` over ROUNDS Bernoulli rounds with mean 0.5 + 0.4 x.theta_a."""
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal((K, D))
    theta /= np.linalg.norm(theta, axis=1, keepdims=True)
    contexts = rng.standard_normal((ROUNDS, D))
    contexts /= np.linalg.norm(contexts, axis=1, keepdims=True)
    means = 0.5 + 0.4 * contexts @ theta.T  # (ROUNDS, K), in [0.1, 0.9]
    rewards = (rng.random((ROUNDS, K)) < means).astype(float)
    table = {f"context {t}": contexts[t] for t in range(ROUNDS)}
    encoder = Encoder(lambda keys: np.stack([table[k] for k in keys]), name="synthetic", dim=D)
    arms = [Model(f"openai/arm-{a}", input_cost_per_token=1e-6, output_cost_per_token=1e-6) for a in range(K)]
    router = Router(arms, policy=policy, encoder=encoder, seed=seed)
    index = {m.name: a for a, m in enumerate(arms)}
    total = 0.0
    for t in range(ROUNDS):
        decision = router.route(f"context {t}")
        a = index[decision.model]
        router.feedback(decision.route_id, rewards[t, a])
        total += means[t].max() - means[t, a]
    return total


def test_linucb_regret_is_below_a_third_of_random():
    linucb, random = regret("linucb"), regret("random")
    print(f"cumulative regret after {ROUNDS} rounds: linucb {linucb:.1f}, random {random:.1f}")
    assert linucb < random / 3

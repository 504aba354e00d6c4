"""The baselines: `cheapest` first tries each model whose cost the cost model does not know, then stays greedy."""

from __future__ import annotations

import numpy as np
import pytest

from bandit_router import Model, Router
from bandit_router.policies import make_policy

JOULES = {"a": 100.0, "b": 50.0, "c": 20.0, "d": 5.0, "e": 1.0}  # per call; e is the cheapest


def offers(policy, cost: list[float], times: int = 1) -> list[list[float]]:
    return [policy.probabilities(np.zeros(2), list(range(len(cost))), np.array(cost), 0.0)[0].tolist()
            for _ in range(times)]


def test_cheapest_offers_each_model_of_unknown_cost_once_then_is_greedy() -> None:
    policy = make_policy("cheapest", 2, ["a", "b", "c"], seed=0)
    assert offers(policy, [0.0, 0.0, 0.0], 4) == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1 / 3] * 3]  # nothing known
    policy = make_policy("cheapest", 2, ["a", "b", "c"], seed=0)
    assert offers(policy, [0.2, 0.6, 1.0], 2) == [[0, 1, 0], [1, 0, 0]]  # b is predicted at the others' mean
    policy.add_arm("new")  # a model added at run time, predicted at the others' mean
    assert offers(policy, [0.2, 0.6, 1.0, 0.6]) == [[0, 0, 0, 1]]
    assert offers(policy, [0.5, 0.2, 1.0], 2) == [[0, 1, 0], [0, 1, 0]]  # known costs: greedy from the start


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cheapest_finds_the_cheapest_model_without_prices(seed: int) -> None:
    router = Router([Model(m, input_cost_per_token=0.0, output_cost_per_token=0.0) for m in JOULES], policy="cheapest",
                    encoder="hashing:16", seed=seed)
    chosen = []
    for i in range(30):
        decision = router.route(f"question number {i}")
        router.settle(decision.route_id, JOULES[decision.model])
        chosen.append(decision.model)
    assert sorted(chosen[:5]) == sorted(JOULES) and set(chosen[5:]) == {"e"}  # not stuck on the first cheap one


def test_cheapest_with_prices_goes_to_the_cheapest_by_price_from_the_start() -> None:
    router = Router([Model("dear", input_cost_per_token=1e-5, output_cost_per_token=3e-5),
                     Model("cheap", input_cost_per_token=1e-7, output_cost_per_token=2e-7)], policy="cheapest",
                    encoder="hashing:16", seed=0)
    for i in range(3):
        decision = router.route(f"hello {i}")
        router.settle(decision.route_id, 1e-5)
        assert decision.model == "cheap"

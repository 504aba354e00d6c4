"""docs/ARCHITECTURE.md's recipe for a new policy, followed step by step: a policy registered from outside the
package routes, learns, saves and loads through a Router, with no change to router.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import pytest

from bandit_router import Router
from bandit_router.errors import ConfigError
from bandit_router.outcome import Outcome
from bandit_router.policies import POLICIES, Policy, PolicyConfig, policy_names, register
from bandit_router.policies.base import one_hot_argmax

from .conftest import hashed_bow, make_cards


@dataclass(frozen=True)
class MeanRewardConfig(PolicyConfig):
    optimism: float = 1.0  # value assumed for a model that has no reward yet

    def validate(self) -> None:
        if not 0.0 <= self.optimism <= 1.0:
            raise ConfigError(f"optimism must be in [0, 1], got {self.optimism!r}")


@register
class MeanReward(Policy):
    """Each model's mean reward so far (the prompt vector is ignored); the best value wins."""

    name = "test-mean-reward"
    Config = MeanRewardConfig
    config: MeanRewardConfig

    def __init__(self, dim: int, arms: Sequence[str], config: MeanRewardConfig | None = None,
                 seed: int | None = None) -> None:
        self.total = np.zeros(0)
        self.count = np.zeros(0)
        self.seen: list[Outcome] = []
        super().__init__(dim, arms, config, seed)

    def add_arm(self, arm: str) -> None:
        super().add_arm(arm)
        self.total, self.count = np.append(self.total, 0.0), np.append(self.count, 0.0)

    def remove_arm(self, arm: str) -> None:
        i = self.index(arm)
        super().remove_arm(arm)
        self.total, self.count = np.delete(self.total, i), np.delete(self.count, i)

    def probabilities(self, x: np.ndarray, arms: Sequence[int], cost: np.ndarray,
                      cost_weight: float) -> tuple[np.ndarray, np.ndarray]:
        idx = list(arms)
        mean = np.where(self.count[idx] > 0, self.total[idx] / np.maximum(self.count[idx], 1), self.config.optimism)
        return one_hot_argmax(mean - cost_weight * cost), mean

    def learn(self, outcomes: Sequence[Outcome]) -> None:
        for o in outcomes:
            i = self.index(o.model)
            self.total[i] += o.weight * o.reward
            self.count[i] += o.weight
            self.seen.append(o)

    def state(self) -> dict[str, np.ndarray]:
        return {"total": self.total.copy(), "count": self.count.copy()}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.total, self.count = state["total"], state["count"]


@pytest.fixture(autouse=True, scope="module")
def registered() -> Iterator[None]:
    yield
    POLICIES.pop(MeanReward.name)  # keep the registry as other tests expect it


def test_the_policy_is_registered_and_checks_its_settings():
    assert MeanReward.name in policy_names()
    assert not MeanReward.shares_state and not MeanReward.takes_prior
    with pytest.raises(ConfigError, match="optimism"):
        Router(make_cards(), policy=MeanReward.name, policy_settings={"optimism": 2.0}, encoder=hashed_bow)


def test_the_policy_routes_learns_saves_and_loads_through_a_router(tmp_path):
    router = Router(make_cards(), policy=MeanReward.name, encoder=hashed_bow, seed=0)
    policy = router.policy
    assert isinstance(policy, MeanReward)

    first = router.route("What is 2 + 2?")
    router.feedback(first.route_id, 0.0)  # the first model disappoints ...
    assert policy.count[policy.index(first.model)] == 1
    learned = policy.seen[-1]
    assert (learned.model, learned.reward, learned.propensity) == (first.model, 0.0, first.propensity)
    assert first.propensity == pytest.approx(1 / 3)  # three untried models tie
    assert learned.cost is not None and learned.cost_weight == 0.0
    second = router.route("What is 2 + 2?")
    assert second.model != first.model  # ... so the next request goes elsewhere

    router.observe("What is 3 + 3?", "openai/large", 0.5)  # offline outcomes take the same path
    assert policy.seen[-1].propensity is None and policy.total[policy.index("openai/large")] == 0.5

    path = tmp_path / "router.safetensors"
    router.save(path)
    loaded = Router.load(path, encoder=hashed_bow)
    assert isinstance(loaded.policy, MeanReward)
    np.testing.assert_array_equal(loaded.policy.count, policy.count)
    np.testing.assert_array_equal(loaded.policy.total, policy.total)
    assert loaded.route("What is 2 + 2?").model == second.model

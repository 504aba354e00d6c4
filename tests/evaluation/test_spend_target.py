"""The spend target: a dial set from a mean cost per request, replayed through the real Router."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bandit_router import ConfigError, Router, SpendTarget
from bandit_router.encoders import Encoder
from bandit_router.evaluation import load_table, replay

from .conftest import write_table


@pytest.mark.parametrize("target", [4e-4, 5e-4, 6e-4])  # between what dials 1 and 0 spend here
def test_mean_spend_lands_on_the_target(tmp_path: Path, topic_encoder: Encoder, target: float) -> None:
    table = load_table(write_table(tmp_path / "t", n=900))  # per call: small 2.1e-5, coder 2.1e-4, large 2.1e-3 USD
    spend = SpendTarget(target)
    router = Router(table.model_cards(), encoder=topic_encoder, seed=0, cost_weight=spend)
    run = replay(table, router, None, seed=0)
    late = run.cost[len(run.cost) // 2:].mean()
    assert late == pytest.approx(target, rel=0.15)  # what the calls really cost, not only what was expected
    assert spend.requests == len(table) and spend.mean_spend == pytest.approx(spend.spent / len(table))
    assert run.cost_weight == router.cost_weight == spend.dial


def test_spend_follows_the_target_where_a_fixed_dial_does_not_say(tmp_path: Path, topic_encoder: Encoder) -> None:
    table = load_table(write_table(tmp_path / "t", n=600))
    costs = [replay(table, Router(table.model_cards(), encoder=topic_encoder, seed=1, cost_weight=SpendTarget(t)),
                    None, seed=1).mean_cost for t in (3.5e-4, 5e-4, 7e-4)]
    assert costs[0] < costs[1] < costs[2]


def test_unreachable_targets_pin_the_dial(tmp_path: Path, topic_encoder: Encoder) -> None:
    table = load_table(write_table(tmp_path / "t", n=600))
    low, high = SpendTarget(1e-7), SpendTarget(1.0)  # below the cheapest model; above the dearest
    for spend in (low, high):
        replay(table, Router(table.model_cards(), encoder=topic_encoder, seed=0, cost_weight=spend), None, seed=0)
    assert low.dial == 1.0 and high.dial == pytest.approx(1e-4)


def test_a_request_with_its_own_dial_is_not_counted(table_dir: Path, topic_encoder: Encoder) -> None:
    table = load_table(table_dir)
    spend = SpendTarget(1e-4, start=0.5)
    router = Router(table.model_cards(), encoder=topic_encoder, seed=0, cost_weight=spend)
    decision = router.route("math question 1", cost_weight=0.0)
    assert decision.cost_weight == 0.0 and spend.requests == 0 and spend.dial == 0.5
    decision = router.route("math question 2")
    assert decision.cost_weight == 0.5 and spend.requests == 1 and spend.dial != 0.5
    router.cost_weight = 0.3  # a number replaces the target
    assert router.spend_target is None and router.route("poem question 3").cost_weight == 0.3


def test_the_dial_moves_by_the_relative_error() -> None:
    spend = SpendTarget(1.0, rate=0.1, start=0.01)
    spend.record(2.0)  # twice the target: log dial + 0.1
    assert spend.dial == pytest.approx(0.01 * np.exp(0.1))
    spend.record(0.0)  # nothing spent: log dial - 0.1
    assert spend.dial == pytest.approx(0.01)
    spend.record(100.0)  # an outlier counts as 31 times the target
    assert spend.dial == pytest.approx(0.01 * np.exp(3.0))
    for _ in range(100):
        spend.record(100.0)
    assert spend.dial == 1.0 and spend.mean_spend == pytest.approx(10102 / 103)


@pytest.mark.parametrize("kwargs, field", [({"per_request": 0}, "per_request"), ({"per_request": -1.0}, "per_request"),
                                           ({"per_request": float("nan")}, "per_request"),
                                           ({"per_request": True}, "per_request"),
                                           ({"per_request": 1.0, "rate": 0.0}, "rate"),
                                           ({"per_request": 1.0, "rate": 2.0}, "rate"),
                                           ({"per_request": 1.0, "start": 1.5}, "start")])
def test_settings_are_checked(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        SpendTarget(**kwargs)
    with pytest.raises(ConfigError, match="cost"):
        SpendTarget(1.0).record(float("inf"))


def test_a_saved_router_keeps_the_dial_its_target_reached(table_dir: Path, topic_encoder: Encoder,
                                                          tmp_path: Path) -> None:
    table = load_table(table_dir)
    router = Router(table.model_cards(), encoder=topic_encoder, seed=0, cost_weight=SpendTarget(4e-4))
    replay(table, router, None, seed=0)
    router.save(tmp_path / "router.safetensors")
    loaded = Router.load(tmp_path / "router.safetensors", encoder=topic_encoder)
    assert loaded.spend_target is None and loaded.cost_weight == router.cost_weight != 0.1


def test_a_spend_target_under_a_budgets_cap(tmp_path: Path, topic_encoder: Encoder) -> None:
    from bandit_router import Budget

    table = load_table(write_table(tmp_path / "t", n=300))
    budget, spend = Budget(0.05, period=300, unit="queries", pacer="none"), SpendTarget(5e-4)
    run = replay(table, Router(table.model_cards(), encoder=topic_encoder, seed=0, cost_weight=spend, budget=budget),
                 None, seed=0)
    assert budget.total_spent() <= 0.05 and spend.requests == (run.chosen >= 0).sum() > 0

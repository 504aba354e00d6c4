"""Metrics on small hand-made arrays: utility, oracle, regret, frontier, AIQ and APGR."""

from __future__ import annotations

import numpy as np
import pytest

from bandit_router.errors import ConfigError
from bandit_router.evaluation.metrics import (aiq, apgr, cumulative_regret, frontier, hull_gain, learning_curve,
                                              oracle_choice, utility)

SCORES = np.array([[1.0, 0.5], [0.2, 0.6], [0.7, 0.7]])
COSTS = np.array([[4.0, 1.0], [4.0, 1.0], [2.0, 1.0]])


def test_utility_divides_cost_by_the_prompts_highest_cost() -> None:
    np.testing.assert_allclose(utility(SCORES, COSTS, 0.4), [[0.6, 0.4], [-0.2, 0.5], [0.3, 0.5]])


def test_oracle_takes_the_best_utility_and_the_cheapest_among_ties() -> None:
    assert oracle_choice(SCORES, COSTS, 0.0).tolist() == [0, 1, 1]  # prompt 2 ties: the cheaper model 1
    assert oracle_choice(SCORES, COSTS, 0.9).tolist() == [1, 1, 1]  # 1 - 0.9 < 0.5 - 0.225


def test_cumulative_regret_against_the_oracle_and_the_best_fixed_model() -> None:
    regret = cumulative_regret(SCORES, COSTS, 0.0, np.array([1, 0, 0]))
    np.testing.assert_allclose(regret["oracle"], [0.5, 0.9, 0.9])  # lost 0.5, then 0.4, then nothing
    # best fixed model at dial 0: model 0 (mean 0.633 > 0.6); choices score 0.5, 0.2, 0.7 against 1.0, 0.2, 0.7
    np.testing.assert_allclose(regret["best_fixed"], [0.5, 0.5, 0.5])
    np.testing.assert_allclose(cumulative_regret(SCORES, COSTS, 0.0, np.array([0, 1, 0]))["best_fixed"],
                               [0.0, -0.4, -0.4])  # beating the best fixed model is negative regret


def test_frontier_keeps_the_upper_concave_non_decreasing_hull() -> None:
    costs = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 0.5])
    scores = np.array([0.5, 0.55, 0.8, 0.7, 0.9, 0.1])
    # (2, 0.55) lies under the chord from (1, 0.5) to (3, 0.8); (4, 0.7) is dominated by (3, 0.8)
    hull_c, hull_s = frontier(costs, scores)
    assert hull_c.tolist() == [0.5, 1.0, 3.0, 5.0] and hull_s.tolist() == [0.1, 0.5, 0.8, 0.9]


def test_aiq_is_the_mean_height_of_the_frontier_over_the_range() -> None:
    # hull (1, 0.5) -> (3, 0.9) over [1, 3]: a straight line, mean 0.7
    assert aiq(np.array([1.0, 3.0, 2.0]), np.array([0.5, 0.9, 0.6]), (1.0, 3.0)) == pytest.approx(0.7)
    # held flat outside the points: over [0, 4] = (1 * 0.5 + 2 * 0.7 + 1 * 0.9) / 4
    assert aiq(np.array([1.0, 3.0]), np.array([0.5, 0.9]), (0.0, 4.0)) == pytest.approx(0.7)
    assert aiq(np.array([1.0]), np.array([0.6]), (0.0, 2.0)) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="hi > lo"):
        aiq(np.array([1.0]), np.array([0.6]), (2.0, 2.0))


def test_apgr_of_random_mixing_is_one_half_and_of_a_perfect_router_more() -> None:
    weak, strong = 0.6, 0.8
    share = np.array([0.25, 0.5, 0.75])
    assert apgr(share, weak + share * (strong - weak), weak, strong) == pytest.approx(0.5)
    # reaching the strong model's score with half the calls: area of (0,0)-(0.5,1)-(1,1) = 0.75
    assert apgr(np.array([0.5]), np.array([strong]), weak, strong) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="same mean score"):
        apgr(share, share, 0.7, 0.7)


def test_hull_gain_is_the_height_above_the_single_models_hull() -> None:
    costs, scores = np.array([1.0, 2.0, 4.0, 3.0]), np.array([0.5, 0.6, 0.8, 0.55])  # the 4th is dominated
    # on the chord from (2, 0.6) to (4, 0.8): hull 0.7 at cost 3; flat at 0.8 beyond 4; flat at 0.5 below 1
    np.testing.assert_allclose(hull_gain([3.0, 5.0, 0.5, 1.5], [0.72, 0.79, 0.5, 0.5], costs, scores),
                               [0.02, -0.01, 0.0, -0.05], atol=1e-12)
    assert hull_gain(3.0, 0.55, costs, scores) < 0  # the dominated single model itself lies under the hull


def test_learning_curve_reads_the_running_mean_at_each_checkpoint() -> None:
    # two models, cost 1 and 3, scoring 0.4 and 0.8 on every prompt: hull 0.4 + 0.2 (c - 1) on [1, 3]
    table_costs, table_scores = np.tile([1.0, 3.0], (4, 1)), np.tile([0.4, 0.8], (4, 1))
    run_scores, run_costs = np.array([1.0, 0.0, 0.6, 0.6]), np.array([1.0, 1.0, 3.0, 3.0])
    curve = learning_curve(run_scores, run_costs, [1, 2, 4, 10], table_costs, table_scores)
    np.testing.assert_allclose(curve, [0.6, 0.1, -0.05, -0.05], atol=1e-12)
    with pytest.raises(ValueError, match="checkpoints"):
        learning_curve(run_scores, run_costs, [0], table_costs, table_scores)
    with pytest.raises(ConfigError, match="checkpoints must list at least one prompt count"):
        learning_curve(run_scores, run_costs, [], table_costs, table_scores)
    with pytest.raises(ValueError, match="table_costs"):
        learning_curve(run_scores, run_costs, [1], table_costs[:3], table_scores[:3])


def test_learning_curve_compares_each_prefix_with_the_single_models_on_the_same_prompts() -> None:
    # the first two prompts are easy (both models score 1), the last two hard (both 0); the run always takes the
    # cheap model: it is exactly on the hull of every prefix, though below the whole table's after prompt 2
    table_costs = np.tile([1.0, 3.0], (4, 1))
    table_scores = np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    curve = learning_curve(table_scores[:, 0], table_costs[:, 0], [1, 2, 3, 4], table_costs, table_scores)
    np.testing.assert_allclose(curve, [0.0, 0.0, 0.0, 0.0], atol=1e-12)
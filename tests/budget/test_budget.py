"""Budget: the knapsack threshold, the exact ledger, reservations, periods, keys and pacers."""

import json
import math
import threading

import numpy as np
import pytest

from bandit_router.budget import Budget, zcl_threshold
from bandit_router.errors import BudgetExceededError, ConfigError, NoEligibleModelError, StateFormatError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_zcl_threshold_runs_from_l_over_e_to_u_and_rises():
    low, high = 2.0, 50.0
    assert zcl_threshold(0.0, low, high) == pytest.approx(low / math.e)
    assert zcl_threshold(1.0, low, high) == pytest.approx(high)
    values = [zcl_threshold(z, low, high) for z in np.linspace(0, 1, 11)]
    assert all(a < b for a, b in zip(values, values[1:]))
    assert zcl_threshold(0.5, low, high) == pytest.approx((high * math.e / low) ** 0.5 * low / math.e)
    assert zcl_threshold(2.0, low, high) == pytest.approx(high)  # z is clipped to [0, 1]


@pytest.mark.parametrize("kwargs, match", [
    ({"limit": 0}, "limit must be a finite number > 0"),
    ({"limit": -1.0}, "limit"),
    ({"limit": math.inf}, "limit"),
    ({"limit": True}, "limit"),
    ({"limit": 1.0, "unit": "days"}, "unit must be one of"),
    ({"limit": 1.0, "period": 0}, "period must be a finite number > 0"),
    ({"limit": 1.0, "period": 2.5, "unit": "queries"}, "whole number of queries"),
    ({"limit": 1.0, "pacer": "greedy"}, "pacer must be one of"),
    ({"limit": 1.0, "bins": 0}, "bins must be an integer >= 1"),
    ({"limit": 1.0, "ratio_range": (5.0, 1.0)}, "ratio_range"),
    ({"limit": 1.0, "pacer": "split", "period": 60.0}, "split pacer needs the queries per period"),
    ({"limit": 1.0, "key_limit": -2.0}, "key_limit"),
])
def test_invalid_settings_name_the_field(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Budget(**kwargs)


def test_ledger_is_the_exact_sum_of_settled_costs_and_holds_return():
    budget = Budget(1.0, pacer="none")
    holds = [budget.reserve(0.25) for _ in range(4)]  # binary-exact holds that fill the limit
    assert budget.reserved() == 1.0 and not budget.fits(0.01)
    costs = [0.1, 0.2, 0.0, 0.05]
    for hold, cost in zip(holds, costs):
        budget.settle(hold, cost)
    assert budget.total_spent() == sum(costs)
    assert budget.spent() == sum(costs)
    assert budget.reserved() == 0.0
    assert budget.remaining() == pytest.approx(1.0 - sum(costs))


def test_reservation_blocks_what_it_holds_and_release_frees_it():
    budget = Budget(1.0, pacer="none")
    hold = budget.reserve(0.7)
    assert not budget.fits(0.4)
    with pytest.raises(BudgetExceededError, match=r"worst-case cost of \$0.4"):
        budget.reserve(0.4)
    budget.release(hold)
    assert budget.fits(0.4) and budget.spent() == 0.0
    with pytest.raises(ConfigError, match="not held"):
        budget.settle(hold, 0.1)


def test_budget_exceeded_is_a_no_eligible_model_error():
    assert issubclass(BudgetExceededError, NoEligibleModelError)


def test_settle_records_the_real_cost_even_above_the_hold():
    budget = Budget(1.0, pacer="none")
    hold = budget.reserve(0.1)
    budget.settle(hold, 0.15)
    assert budget.total_spent() == 0.15


@pytest.mark.parametrize("cost", [-0.1, math.nan, math.inf, "1"])
def test_invalid_cost_is_rejected(cost):
    budget = Budget(1.0)
    hold = budget.reserve(0.1)
    with pytest.raises(ConfigError, match="cost must be a finite number >= 0"):
        budget.settle(hold, cost)


def test_time_window_starts_afresh_each_period():
    clock = Clock()
    budget = Budget(1.0, period=60.0, unit="seconds", pacer="none", clock=clock)
    budget.settle(budget.reserve(0.9), 0.9)
    assert not budget.fits(0.2)
    clock.now += 61
    assert budget.fits(0.2) and budget.spent() == 0.0
    assert budget.total_spent() == 0.9


def test_query_period_starts_afresh_after_that_many_queries():
    budget = Budget(1.0, period=3, unit="queries", pacer="none")
    for _ in range(3):
        budget.settle(budget.reserve(0.3), 0.3)
    assert budget.spent() == pytest.approx(0.9)
    budget.settle(budget.reserve(0.3), 0.3)  # the 4th query opens the next period
    assert budget.spent() == pytest.approx(0.3)
    assert budget.total_spent() == pytest.approx(1.2)


def test_key_accounts_cap_each_key_and_draw_on_the_global_one():
    budget = Budget(1.0, pacer="none", key_limit=0.3)
    budget.settle(budget.reserve(0.25, "alice"), 0.25)
    assert not budget.fits(0.1, "alice")
    assert budget.fits(0.1, "bob")
    with pytest.raises(BudgetExceededError, match="key 'alice'"):
        budget.reserve(0.1, "alice")
    budget.settle(budget.reserve(0.3, "bob"), 0.3)
    assert budget.spent("alice") == 0.25 and budget.spent("bob") == 0.3
    assert budget.spent() == pytest.approx(0.55)
    assert budget.remaining("carol") == pytest.approx(0.3)
    assert budget.remaining() == pytest.approx(0.45)


def test_knapsack_narrows_to_the_best_value_per_cost_as_the_bin_is_spent():
    budget = Budget(1.0, bins=1, ratio_range=(1.0, 100.0))  # no period: z is the share of the limit used
    names = ["big", "mid", "small"]
    quality, cost = np.array([0.9, 0.6, 0.5]), np.array([0.09, 0.02, 0.006])  # ratios 10, 30, 83
    assert budget.pace(names, quality, cost) == names  # z = 0: Psi = 1/e
    budget.settle(budget.reserve(0.5), 0.5)  # z = 0.5: Psi = sqrt(100 e / 1) / e = 6.07 -> still all
    assert budget.threshold() == pytest.approx(zcl_threshold(0.5, 1.0, 100.0))
    budget.settle(budget.reserve(0.2), 0.2)  # z = 0.7: Psi = 17.5
    assert budget.pace(names, quality, cost) == ["mid", "small"]
    budget.settle(budget.reserve(0.25), 0.25)  # z = 0.95: Psi = 71
    assert budget.pace(names, quality, cost) == ["small"]
    budget.settle(budget.reserve(0.05), 0.05)  # z = 1: Psi = U = 100 > every ratio -> the cheapest
    assert budget.pace(names, quality, cost) == ["small"]


def test_knapsack_bins_roll_unspent_budget_over():
    budget = Budget(1.0, period=10, unit="queries", bins=2, ratio_range=(1.0, 100.0))
    for _ in range(5):  # bin 0 (queries 0-4) spends nothing
        budget.settle(budget.reserve(0.0), 0.0)
    budget.settle(budget.reserve(0.5), 0.5)  # first query of bin 1: its allowance is 0.5 + 0.5 rolled over
    assert budget.threshold() == pytest.approx(zcl_threshold(0.5, 1.0, 100.0))


def test_knapsack_bin_share_without_rollover():
    budget = Budget(1.0, period=10, unit="queries", bins=2, ratio_range=(1.0, 100.0))
    budget.settle(budget.reserve(0.25), 0.25)  # bin 0 allowance 0.5: z = 0.5
    assert budget.threshold() == pytest.approx(zcl_threshold(0.5, 1.0, 100.0))


def test_knapsack_counts_holds_in_flight():
    budget = Budget(1.0, bins=1, ratio_range=(1.0, 100.0))
    budget.reserve(0.5)
    assert budget.threshold() == pytest.approx(zcl_threshold(0.5, 1.0, 100.0))


def test_split_allows_models_within_the_per_query_share_else_the_cheapest():
    budget = Budget(1.0, period=100, unit="queries", pacer="split")
    names = ["big", "small", "tiny"]
    assert budget.pace(names, [0.9, 0.5, 0.1], [0.05, 0.01, 0.002]) == ["small", "tiny"]
    assert budget.pace(names, [0.9, 0.5, 0.1], [0.05, 0.03, 0.02]) == ["tiny"]


def test_none_pacer_allows_everything_affordable():
    budget = Budget(1.0, pacer="none")
    assert budget.pace(["a", "b"], [0.1, 0.9], [0.5, 0.01]) == ["a", "b"]


def test_concurrent_reservations_never_overcommit():
    budget = Budget(1.0, pacer="none")
    granted, refused = [], []
    lock = threading.Lock()

    def worker() -> None:
        try:
            hold = budget.reserve(0.03)
        except BudgetExceededError:
            with lock:
                refused.append(1)
            return
        budget.settle(hold, 0.03)
        with lock:
            granted.append(1)

    threads = [threading.Thread(target=worker) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 33 and len(refused) == 17
    assert budget.total_spent() <= 1.0


@pytest.mark.parametrize("pacer", ["knapsack", "split"])
def test_pacing_keeps_enough_for_the_rest_of_the_period_at_the_cheapest_cost(pacer):
    budget = Budget(1.0, period=10, unit="queries", pacer=pacer, bins=1, ratio_range=(0.1, 10.0))
    names, quality, cost = ["big", "small"], [0.9, 0.5], [0.09, 0.05]
    assert budget.pace(names, quality, cost) == names
    budget.settle(budget.reserve(0.6), 0.6)  # $0.4 left for 9 queries: the 8 after this one need 8 x $0.05
    assert budget.pace(names, quality, cost) == ["small"]


def test_origin_aligns_periods_with_the_clock_not_the_start():
    clock = Clock()
    budget = Budget(1.0, period=100.0, pacer="none", origin=950.0, clock=clock)  # this period ends at 1050
    budget.settle(budget.reserve(0.6), 0.6)
    clock.now = 1049.0
    assert budget.remaining() == pytest.approx(0.4)
    clock.now = 1051.0
    assert budget.remaining() == pytest.approx(1.0) and budget.total_spent() == pytest.approx(0.6)


def test_a_saved_ledger_restores_the_period_spend_into_a_restarted_budget(tmp_path):
    clock = Clock()
    budget = Budget(1.0, period=100.0, pacer="none", origin=950.0, key_limit=0.5, clock=clock)
    budget.settle(budget.reserve(0.2, "ann"), 0.15)
    budget.settle(budget.reserve(0.1), 0.1)
    budget.reserve(0.05, "bob")  # in flight when saved: kept as spent at its worst case
    budget.save(tmp_path / "ledger.json")
    restarted = Budget(2.0, period=100.0, pacer="none", origin=950.0, key_limit=0.5, clock=clock)
    restarted.restore(tmp_path / "ledger.json")
    assert restarted.spent() == pytest.approx(0.3) and restarted.spent("ann") == pytest.approx(0.15)
    assert restarted.spent("bob") == pytest.approx(0.05) and restarted.reserved() == 0.0
    assert restarted.remaining() == pytest.approx(1.7)  # the new limit applies to the restored spend
    assert restarted.remaining("ann") == pytest.approx(0.35)
    clock.now = 1051.0  # the next period starts afresh; lifetime totals stay
    assert restarted.remaining() == pytest.approx(2.0) and restarted.total_spent() == pytest.approx(0.3)


def test_a_budget_given_no_origin_takes_the_saved_one_on_restore(tmp_path):
    """The README's Budget(5.00, period=86_400), rebuilt after a restart: it goes on counting the saved period."""
    clock = Clock()
    budget = Budget(1.0, period=100.0, pacer="none", clock=clock)  # its periods start at 1000
    budget.settle(budget.reserve(0.3), 0.3)
    budget.save(tmp_path / "ledger.json")
    clock.now = 1060.0
    restarted = Budget(1.0, period=100.0, pacer="none", clock=clock)  # would start a period at 1060
    restarted.restore(tmp_path / "ledger.json")
    assert restarted.remaining() == pytest.approx(0.7)
    clock.now = 1101.0  # the saved period's end, not 1160
    assert restarted.remaining() == pytest.approx(1.0)


def test_a_lifetime_budget_restores_without_an_origin(tmp_path):
    clock = Clock()
    budget = Budget(1.0, pacer="none", clock=clock)
    budget.settle(budget.reserve(0.4), 0.4)
    budget.save(tmp_path / "ledger.json")
    assert json.loads((tmp_path / "ledger.json").read_text(), parse_constant=lambda c: 1 / 0)["seen_ratio"] is None
    clock.now += 500  # strict JSON (no Infinity before any ratio was seen), so jq and JSON.parse read it
    restarted = Budget(1.0, pacer="none", clock=clock)
    restarted.restore(tmp_path / "ledger.json")
    assert restarted.remaining() == pytest.approx(0.6)


def test_restore_refuses_another_period_or_a_damaged_ledger(tmp_path):
    clock = Clock()
    path = tmp_path / "ledger.json"
    Budget(1.0, period=100.0, origin=950.0, clock=clock).save(path)
    for other in ({"period": 50.0}, {"period": 100.0, "origin": 900.0}, {"period": 100.0, "unit": "queries"}):
        with pytest.raises(ConfigError, match="same period, unit and origin"):
            Budget(1.0, clock=clock, **other).restore(path)
    for text in ("{", '{"format": "bandit-router-budget/1"}', path.read_text().replace('"spent": 0.0', '"spent": -5')):
        path.write_text(text)
        with pytest.raises(StateFormatError, match="budget ledger"):
            Budget(1.0, period=100.0, origin=950.0, clock=clock).restore(path)


@pytest.mark.parametrize("kwargs, match", [
    ({"period": 10, "unit": "queries", "origin": 0.0}, "origin applies to time periods only"),
    ({"origin": 0.0}, "origin applies to time periods only"),
    ({"period": 60.0, "origin": 5000.0}, "not in the future"),
    ({"period": 60.0, "origin": math.nan}, "origin must be a finite time"),
])
def test_invalid_origin(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Budget(1.0, clock=Clock(), **kwargs)

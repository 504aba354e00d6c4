"""Shared budget ledgers (Redis, SQLite): replicas spend from the same accounts and never reserve past a limit."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Callable

import pytest

from bandit_router.errors import BudgetExceededError, ConfigError
from bandit_router.service import parse_config
from bandit_router.service.ledger import RedisBudget, SharedBudget, SQLiteBudget

from .conftest import UPSTREAM_KEY, config_dict


ENV = {"UPSTREAM_KEY": UPSTREAM_KEY}


@pytest.fixture(params=["redis", "sqlite"])
def ledger(request, tmp_path: Path) -> Callable[..., SharedBudget]:
    """Builds replicas' budgets over one shared ledger (a Redis server, or a SQLite file)."""
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        return lambda limit, **settings: RedisBudget(server.url, limit, namespace="t", **settings)
    return lambda limit, **settings: SQLiteBudget(tmp_path / "state.db", limit, namespace="t", **settings)


def test_replicas_share_holds_spend_and_key_accounts(ledger) -> None:
    one, two = ledger(1.0, key_limit=0.5), ledger(1.0, key_limit=0.5)
    hold = one.reserve(0.4, "k")
    with pytest.raises(BudgetExceededError, match="key 'k'"):
        two.reserve(0.2, "k")  # the other replica sees the hold
    assert not two.fits(0.2, "k") and two.fits(0.2, "other")
    one.settle(hold, 0.1)
    assert two.spent("k") == pytest.approx(0.1) and two.remaining("k") == pytest.approx(0.4)
    other = two.reserve(0.45, "other")
    two.release(other)
    assert one.spent() == pytest.approx(0.1) and one.total_spent() == pytest.approx(0.1) and one.reserved() == 0
    with pytest.raises(ConfigError, match="not held"):
        one.release(other)


def test_a_hold_raised_for_a_fallback_replaces_the_old_one(ledger) -> None:
    budget = ledger(1.0, key_limit=0.5)
    hold = budget.enlarge(budget.reserve(0.1, "k"), 0.4, expected=0.2)
    assert budget.reserved("k") == pytest.approx(0.4) and budget.reserved() == pytest.approx(0.4)
    with pytest.raises(BudgetExceededError, match="key 'k'"):
        budget.enlarge(hold, 0.6)  # past the key's limit: the hold it had is kept
    budget.settle(hold, 0.3)
    assert budget.spent("k") == pytest.approx(0.3) and budget.reserved() == 0


def test_a_period_starts_afresh_and_the_lifetime_spend_goes_on(ledger) -> None:
    now = [3600.0 * 24 * 365]
    budget = ledger(500.0, period=60.0, clock=lambda: now[0])
    budget.settle(budget.reserve(300.0), 300.0)
    with pytest.raises(BudgetExceededError, match=r"\$200 of \$500 left this period"):  # exact at > $100
        budget.reserve(250.0)
    now[0] += 60.0
    assert budget.spent() == 0.0 and budget.remaining() == 500.0 and budget.total_spent() == pytest.approx(300.0)
    budget.settle(budget.reserve(250.0), 250.0)
    assert budget.total_spent() == pytest.approx(550.0)


def test_a_shared_ledger_enforces_the_hard_cap_only(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="budget.pacer must be 'none'"):
        SQLiteBudget(tmp_path / "s.db", 1.0, pacer="knapsack")


def test_a_shared_ledger_is_not_saved_to_a_file(ledger, tmp_path: Path) -> None:
    """Its store keeps it; Budget.save wrote an empty ledger (a backup of $0) and restore did nothing."""
    budget = ledger(1.0)
    budget.settle(budget.reserve(0.25), 0.25)
    for keep in (budget.save, budget.restore):
        with pytest.raises(ConfigError, match="lives in its store"):
            keep(tmp_path / "ledger.json")
    assert budget.spent() == 0.25 and not (tmp_path / "ledger.json").exists()


def _spend(path: str, seed: int, start, results) -> None:
    """One replica's loop, begun with the others: reserve $0.03 worst cases and settle them at $0.01-0.03 after a
    2 ms call until the $10 budget is spent; puts what it spent on `results`."""
    import random
    import time

    budget, rng, spent = SQLiteBudget(path, 10.0), random.Random(seed), 0.0
    start.wait()
    while True:
        try:
            hold = budget.reserve(0.03)
        except BudgetExceededError:
            break
        time.sleep(0.002)  # the call
        cost = rng.choice([0.01, 0.02, 0.03])
        budget.settle(hold, cost)
        spent += cost
    results.put(spent)


def test_four_processes_sharing_a_sqlite_ledger_never_overspend(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    SQLiteBudget(path, 10.0)  # the tables, before the processes race to create them
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(4), context.Queue()
    processes = [context.Process(target=_spend, args=(path, seed, start, results)) for seed in range(4)]
    for process in processes:
        process.start()
    spent = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    ledger = SQLiteBudget(path, 10.0)
    assert all(s > 0 for s in spent), spent  # every process spent some of it
    assert ledger.spent() == pytest.approx(sum(spent)) and ledger.reserved() == 0
    assert 10.0 - 0.03 < ledger.spent() <= 10.0  # spent down to less than one worst case, never past the limit


def test_the_service_shares_its_budget_through_the_sqlite_state(tmp_path: Path) -> None:
    state = {"sqlite": str(tmp_path / "state.db")}
    budget = {"limit": 1.0, "pacer": "none"}
    one, two = (parse_config(config_dict("http://127.0.0.1:9/v1", state=state, budget=budget), env=ENV).make_budget()
                for _ in range(2))
    assert isinstance(one, SQLiteBudget)
    one.reserve(0.75)
    assert two.remaining() == pytest.approx(0.25)
    with pytest.raises(ConfigError, match="budget.pacer must be 'none'"):
        parse_config(config_dict("http://127.0.0.1:9/v1", state=state, budget={"limit": 1.0, "pacer": "knapsack"}), env=ENV).make_budget()


def test_a_route_whose_room_another_replica_took_goes_to_a_model_that_still_fits(tmp_path: Path) -> None:
    """Between admitting the models and holding the chosen one's worst case, another replica's call takes most of
    the shared ledger: the route goes to a model that still fits (it raised BudgetExceededError)."""
    from bandit_router import Model, Router
    from bandit_router.encoders import hashing_encoder

    other = SQLiteBudget(tmp_path / "state.db", 1.0, namespace="t")

    class Interleaved(SQLiteBudget):
        def reserve(self, amount, key=None, expected=None):
            if not other.reserved():
                other.reserve(0.7)  # the other replica's call lands between fits() and reserve()
            return super().reserve(amount, key, expected)

    cards = [Model("cheap", input_cost_per_token=1e-7, output_cost_per_token=1e-7, max_output_tokens=100),
             Model("dear", input_cost_per_token=1e-3, output_cost_per_token=4e-3, max_output_tokens=100)]
    router = Router(cards, encoder=hashing_encoder(16), budget=Interleaved(tmp_path / "state.db", 1.0, namespace="t"),
                    seed=0)
    for i in range(20):  # dear is much better: it is chosen first
        router.observe(f"hello {i}", "dear", 1.0)
        router.observe(f"hello {i}", "cheap", 0.0)
    assert router.route("hello").model == "cheap"  # dear's $0.4 no longer fits beside the other's $0.7
    assert other.reserved() == pytest.approx(0.7 + router.gate.worst_case_cost("cheap", 2, None))


def test_after_redis_loses_its_data_a_settle_closes_no_other_replicas_hold(redis_server) -> None:
    """Hold ids are random: a counter restarted after the loss, so a hold made before it and one made after had the
    same id, and settling the first closed the second (its spend went unrecorded)."""
    import redis

    first, second = (RedisBudget(redis_server.url, 1.0, namespace="t") for _ in range(2))
    before = first.reserve(0.1)
    redis.Redis.from_url(redis_server.url).flushall()  # Redis restarted without persistence
    after = second.reserve(0.5)
    assert after.id != before.id
    with pytest.raises(ConfigError, match="not held"):
        first.settle(before, 0.05)
    second.settle(after, 0.4)
    assert second.spent() == pytest.approx(0.4) and second.reserved() == 0


def test_a_call_whose_hold_a_shared_ledger_lost_still_answers(tmp_path: Path, caplog) -> None:
    """The call was made: a ledger that no longer holds its hold is logged, not raised after the answer."""
    from bandit_router import Model, Router
    from bandit_router.encoders import hashing_encoder

    budget = SQLiteBudget(tmp_path / "state.db", 1.0, namespace="t")
    router = Router([Model("openai/a", input_cost_per_token=1e-6, output_cost_per_token=1e-6)],
                    encoder=hashing_encoder(16), budget=budget, seed=0)
    decision = router.route("hello", max_tokens=10)
    budget.release(router.gate.held[decision.route_id][0])  # the store lost it
    router.settle(decision.route_id, 1e-5)
    assert "no longer holds" in caplog.text and budget.spent() == 0

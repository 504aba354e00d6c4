"""A budgeted Router: eligibility, reservation at route time, settlement from LiteLLM usage, release on failure,
and 50 concurrent calls against a nearly spent budget (real LiteLLM calls to the local FakeLLMServer)."""

import threading
from concurrent.futures import ThreadPoolExecutor

import litellm
import numpy as np
import pytest

from bandit_router.budget import Budget
from bandit_router.errors import AllModelsFailedError, BudgetExceededError, ConfigError
from bandit_router.evaluation.embeddings import lookup_encoder
from bandit_router.evaluation.replay import replay
from bandit_router.evaluation.table import bundled_table_path, load_table
from bandit_router.models import Model
from bandit_router.router import Router
from bandit_router.settings import FeedbackSettings
from bandit_router.testing import FakeLLMServer, ModelBehavior

from .conftest import toy_encoder

litellm.suppress_debug_info = True
PROMPT = "Summarise internationalisation considerations"  # 44 characters: 11 estimated tokens, 3 words


@pytest.fixture(scope="module")
def server():
    with FakeLLMServer({"cheap": ModelBehavior(), "dear": ModelBehavior(), "broken": ModelBehavior(fail_status=500)}) as srv:
        yield srv


def card(server, name: str, price: float) -> Model:
    return Model(f"openai/{name}", input_cost_per_token=price, output_cost_per_token=price, api_base=server.base_url,
                 api_key="sk-test", context_window=10_000, max_output_tokens=1_000)


def router_for(server, budget: Budget, names=(("cheap", 1e-6), ("dear", 1e-5)), **kwargs) -> Router:
    return Router([card(server, n, p) for n, p in names], encoder=toy_encoder(), seed=0, budget=budget, **kwargs)


def test_route_holds_the_worst_case_cost_until_settled(caplog):
    models = [Model("a", input_cost_per_token=1e-6, output_cost_per_token=2e-6, max_output_tokens=100)]
    budget = Budget(1.0, pacer="none")
    router = Router(models, encoder=toy_encoder(), budget=budget)
    decision = router.route("x" * 40, max_tokens=50)  # 10 prompt tokens + 50 output tokens
    assert budget.reserved() == pytest.approx(10 * 1e-6 + 50 * 2e-6)
    router.settle(decision.route_id, 3e-5)
    assert budget.reserved() == 0.0 and budget.total_spent() == 3e-5
    assert not caplog.records
    router.settle(decision.route_id, 1.0)  # already settled: nothing more is charged, and the caller is told
    assert budget.total_spent() == 3e-5
    assert [r.levelname for r in caplog.records] == ["WARNING"] and "not waiting to be settled" in caplog.text
    caplog.clear()
    decision = router.route("x" * 40)  # no max_tokens: the model's output limit bounds the call
    assert budget.reserved() == pytest.approx(10 * 1e-6 + 100 * 2e-6)
    router.release(decision.route_id)
    assert budget.reserved() == 0.0 and budget.total_spent() == 3e-5
    assert not caplog.records
    router.release(decision.route_id)
    assert "release(" in caplog.text and "nothing was released" in caplog.text


def test_models_whose_worst_case_does_not_fit_are_not_eligible():
    models = [Model("cheap", input_cost_per_token=1e-6, output_cost_per_token=1e-6),
              Model("dear", input_cost_per_token=1e-3, output_cost_per_token=1e-3)]
    budget = Budget(0.05, pacer="none")
    router = Router(models, encoder=toy_encoder(), budget=budget, policy="random", seed=0)
    decisions = [router.route(f"hello {i}", max_tokens=100) for i in range(20)]
    assert {d.model for d in decisions} == {"cheap"}  # dear's worst case $0.102 > $0.05
    assert set(decisions[0].probabilities) == {"cheap"}
    with pytest.raises(BudgetExceededError, match="budget exhausted"):
        Router(models[1:], encoder=toy_encoder(), budget=Budget(0.05)).route("hello", max_tokens=100)


def test_budget_key_draws_on_that_key():
    models = [Model("a", input_cost_per_token=1e-3, output_cost_per_token=1e-3)]
    budget = Budget(1.0, pacer="none", key_limit=0.15)
    router = Router(models, encoder=toy_encoder(), budget=budget)
    router.route("hi", max_tokens=99, budget_key="alice")  # 1 + 99 tokens: $0.1
    with pytest.raises(BudgetExceededError, match="for key 'alice'"):
        router.route("hi", max_tokens=99, budget_key="alice")
    router.route("hi", max_tokens=99, budget_key="bob")
    assert budget.reserved("alice") == pytest.approx(0.1) and budget.reserved() == pytest.approx(0.2)


def test_a_budget_full_of_holds_says_they_come_back():
    """Calls in flight hold their worst case: a refusal while they do tells the caller to retry when they end,
    not to wait for the next period (an app showed users a spent day when $0 was spent)."""
    models = [Model("a", input_cost_per_token=1e-3, output_cost_per_token=1e-3)]
    budget = Budget(1.0, pacer="none", key_limit=0.15)
    router = Router(models, encoder=toy_encoder(), budget=budget)
    held = router.route("hi", max_tokens=99, budget_key="alice")
    with pytest.raises(BudgetExceededError, match=r"calls in flight hold \$0.1, which comes back as they end"):
        router.route("hi", max_tokens=99, budget_key="alice")
    router.settle(held.route_id, 0.1)
    with pytest.raises(BudgetExceededError, match="wait for the next period"):  # spent: no hold to wait for
        router.route("hi", max_tokens=99, budget_key="alice")


def test_complete_settles_the_cost_litellm_reported(server):
    budget = Budget(1.0, pacer="none")
    router = router_for(server, budget)
    done = [router.complete(PROMPT, max_tokens=20, num_retries=0) for _ in range(5)]
    assert all(c.cost > 0 for c in done)
    assert budget.total_spent() == pytest.approx(sum(c.cost for c in done), rel=1e-12)
    assert budget.reserved() == 0.0


async def test_acomplete_and_stream_settle(server):
    budget = Budget(1.0, pacer="none")
    router = router_for(server, budget)
    done = await router.acomplete(PROMPT, max_tokens=20, num_retries=0)
    stream = router.stream(PROMPT, max_tokens=20, num_retries=0)
    text = "".join((chunk.choices[0].delta.content or "") for chunk in stream if chunk.choices)
    assert text and stream.cost > 0
    assert budget.total_spent() == pytest.approx(done.cost + stream.cost, rel=1e-12)
    assert budget.reserved() == 0.0


async def test_a_stream_closed_before_its_end_is_charged_its_worst_case(server):
    budget = Budget(1.0, pacer="none")
    router = router_for(server, budget)
    stream = router.stream(PROMPT, max_tokens=20, num_retries=0)
    chunks = iter(stream)
    next(chunks)
    held = budget.reserved()
    assert held > 0
    chunks.close()  # the consumer stops reading: no usage will arrive
    assert stream.cost == held and budget.reserved() == 0.0 and budget.total_spent() == held
    stream = router.astream(PROMPT, max_tokens=20, num_retries=0)
    chunks = stream.__aiter__()
    await anext(chunks)
    assert budget.reserved() == held
    await chunks.aclose()
    assert stream.cost == pytest.approx(held)
    assert budget.reserved() == 0.0 and budget.total_spent() == pytest.approx(2 * held)


def test_an_expired_route_whose_hold_was_never_settled_is_charged_its_worst_case():
    models = [Model("a", input_cost_per_token=1e-6, output_cost_per_token=2e-6, max_output_tokens=100)]
    budget = Budget(1.0, pacer="none")
    router = Router(models, encoder=toy_encoder(), budget=budget, feedback=FeedbackSettings(pending_ttl=60))
    router.route("x" * 40, max_tokens=50)
    settled = router.route("x" * 40, max_tokens=50)
    router.settle(settled.route_id, 1e-6)
    for route_id, (hold, worst, taken) in list(router.gate.held.items()):
        router.gate.held[route_id] = (hold, worst, taken - 61)
    router.route("x" * 40, max_tokens=50)  # routing sweeps expired routes
    assert budget.total_spent() == pytest.approx(1e-6 + 10 * 1e-6 + 50 * 2e-6)
    assert budget.reserved() == pytest.approx(10 * 1e-6 + 50 * 2e-6)  # only the newest route still holds


def test_a_call_still_in_flight_when_max_pending_pushes_its_decision_out_is_charged_its_real_cost():
    """max_pending bounds the decisions waiting for a rating, not the calls in flight: the call's own cost is
    charged when it ends (it used to be charged its worst case at once, and its real cost dropped)."""
    models = [Model("a", input_cost_per_token=1e-6, output_cost_per_token=2e-6, max_output_tokens=100)]
    budget = Budget(1.0, pacer="none")
    router = Router(models, encoder=toy_encoder(), budget=budget, feedback=FeedbackSettings(max_pending=2))
    first = router.route("x" * 40, max_tokens=50)
    for _ in range(3):
        router.route("x" * 40, max_tokens=50)
    assert not router.pending(first.route_id) and budget.total_spent() == 0.0
    router.settle(first.route_id, 1e-6)
    assert budget.total_spent() == 1e-6 and budget.reserved() == pytest.approx(3 * (10 * 1e-6 + 50 * 2e-6))


def test_failed_call_releases_its_hold(server):
    budget = Budget(1.0, pacer="none")
    router = router_for(server, budget, names=(("broken", 1e-6),))
    with pytest.raises(AllModelsFailedError):
        router.complete(PROMPT, max_tokens=20, num_retries=0)
    assert budget.reserved() == 0.0 and budget.total_spent() == 0.0


def test_fifty_concurrent_calls_against_a_nearly_spent_budget(server):
    limit = 1e-3
    budget = Budget(limit, pacer="none")
    router = router_for(server, budget)
    budget.settle(budget.reserve(limit - 4e-4), limit - 4e-4)  # nearly spent: $0.0004 left
    results, refused = [], []
    lock = threading.Lock()

    def call(i: int) -> None:
        try:
            done = router.complete(f"{PROMPT} number {i}", max_tokens=20, num_retries=0)
        except BudgetExceededError:
            with lock:
                refused.append(i)
            return
        with lock:
            results.append(done)

    with ThreadPoolExecutor(max_workers=50) as pool:
        list(pool.map(call, range(50)))
    assert len(results) + len(refused) == 50 and results and refused
    assert budget.total_spent() <= limit
    assert budget.total_spent() == pytest.approx(limit - 4e-4 + sum(c.cost for c in results), rel=1e-12)
    assert budget.reserved() == 0.0


def test_budget_must_be_a_budget():
    with pytest.raises(ConfigError, match="budget must be"):
        Router([Model("a", input_cost_per_token=0, output_cost_per_token=0)], encoder=toy_encoder(), budget=5.0)


@pytest.mark.parametrize("pacer", ["knapsack", "split"])
def test_replay_spend_never_exceeds_the_budget(pacer):
    table = load_table(bundled_table_path()).subset(np.arange(400))
    vectors = np.random.default_rng(0).standard_normal((len(table), 8))
    encoder = lookup_encoder(table, vectors / np.linalg.norm(vectors, axis=1, keepdims=True), "random")
    limit = 0.3 * table.costs.sum(axis=0).max()
    budget = Budget(limit, period=len(table), unit="queries", pacer=pacer)
    run = replay(table, Router(table.model_cards(), encoder=encoder, seed=0, budget=budget), 0.0, seed=0)
    assert np.cumsum(run.cost).max() <= limit
    assert budget.total_spent() == pytest.approx(run.cost.sum(), rel=1e-12)
    unbudgeted = replay(table, Router(table.model_cards(), encoder=encoder, seed=0), 0.0, seed=0)
    assert unbudgeted.cost.sum() > limit  # the budget binds


def test_a_budget_per_queries_starts_its_next_period_after_refusals():
    """$ per N queries: refused requests count among the period's queries, so an exhausted period ends."""
    model = Model("a", input_cost_per_token=1e-6, output_cost_per_token=1e-6)
    router = Router([model], encoder=toy_encoder(), budget=Budget(0.001, period=10, unit="queries", pacer="none"))
    served = []
    for i in range(30):
        try:
            decision = router.route("hello world", max_tokens=100)
        except BudgetExceededError:
            served.append(False)
            continue
        router.settle(decision.route_id, 0.0003)
        served.append(True)
    assert served[:10] == [True] * 3 + [False] * 7  # $0.001 covers 3 calls of $0.0003 in each 10 queries
    assert served[10:20] == served[:10] == served[20:]  # then a fresh period: it did not stay exhausted


def test_a_fallback_to_a_dearer_model_raises_the_hold_when_the_budget_has_room(server):
    """A failing cheap model falls back to the dearer one: the hold grows to its worst case (it used to stop at the
    models the first hold covered, so a healthy model went unused and the call failed)."""
    names = (("broken", 1e-6), ("dear", 1e-5))
    budget = Budget(1.0, pacer="none")
    router = router_for(server, budget, names, policy="cheapest")
    completion = router.complete(PROMPT, max_tokens=10)
    assert (completion.decision.model, completion.decision.failed) == ("openai/dear", ("openai/broken",))
    assert budget.reserved() == 0.0 and budget.spent() == pytest.approx(completion.cost)
    tight = Budget(2.3e-4, pacer="none")  # dear's worst case (22 tokens at 1e-5) fits in place of broken's hold
    router = router_for(server, tight, names, policy="cheapest")
    assert router.complete(PROMPT, max_tokens=10).decision.model == "openai/dear"
    assert tight.reserved() == 0.0


def test_a_hold_raised_for_a_fallback_is_the_same_query_and_refused_beyond_the_budget():
    budget = Budget(1.0, period=4, unit="queries", pacer="none")
    hold = budget.reserve(0.1)
    bigger = budget.enlarge(hold, 0.5, expected=0.2)
    assert budget.reserved() == pytest.approx(0.5) and budget._global.queries == 1  # one query
    with pytest.raises(BudgetExceededError, match="cannot raise a call's hold"):
        budget.enlarge(bigger, 1.5)
    assert budget.reserved() == pytest.approx(0.5)  # the hold it had is kept
    budget.settle(bigger, 0.3)
    assert budget.spent() == pytest.approx(0.3)


def test_a_fallback_in_a_period_of_queries_counts_one_query(server):
    """A fallback to a dearer model used to take a second reservation, so a period of 4 queries ended after 2."""
    budget = Budget(1.0, period=4, unit="queries", pacer="none")
    router = router_for(server, budget, (("broken", 1e-6), ("dear", 1e-5)), policy="cheapest")
    costs = [router.complete(PROMPT, max_tokens=10).cost for _ in range(3)]
    assert budget.spent() == pytest.approx(sum(costs))  # still the first period after 3 queries


def test_the_worst_case_counts_every_answer_asked_for():
    """OpenAI's n asks for n answers: the hold covers n x max_tokens (a tenant passing n=128 used to be held for
    one answer and could spend 64 times a budget)."""
    models = [Model("a", input_cost_per_token=1e-6, output_cost_per_token=2e-6, max_output_tokens=100)]
    budget = Budget(1e-3, pacer="none")
    router = Router(models, encoder=toy_encoder(), budget=budget)
    router.release(router.route("x" * 40, max_tokens=50).route_id)
    with pytest.raises(BudgetExceededError, match="worst-case cost is"):
        router.complete("x" * 40, max_tokens=50, n=128, mock_response="hi")
    router.route("x" * 40, max_tokens=50, choices=3)
    assert budget.reserved() == pytest.approx(10 * 1e-6 + 3 * 50 * 2e-6)
    with pytest.raises(ConfigError, match="n \\(choices\\) must be an integer"):
        router.route("x", choices=0)


def test_under_a_budget_a_call_carries_the_max_tokens_its_hold_assumed(caplog):
    # the trial: a priced model with no output limit, called with no max_tokens, passed a key's limit: its hold
    # assumed expected_output_tokens (256) and nothing capped the answer
    with FakeLLMServer({"open": ModelBehavior(), "limited": ModelBehavior()}) as server:
        def priced(name: str, **limits) -> Model:
            return Model(f"openai/{name}", input_cost_per_token=1e-6, output_cost_per_token=2e-6,
                         api_base=server.base_url, api_key="sk-test", **limits)

        cards = [priced("open"), priced("limited", max_output_tokens=1_000)]
        router = Router(cards, policy="cheapest", encoder=toy_encoder(), budget=Budget(1.0, pacer="none"))
        assert "['openai/open'] that give no max_tokens are capped at 256 output tokens" in caplog.text
        router.complete(PROMPT, models=["openai/open"])
        router.complete(PROMPT, models=["openai/open"], max_tokens=50)
        router.complete(PROMPT, models=["openai/limited"])
        Router(cards, policy="cheapest", encoder=toy_encoder()).complete(PROMPT, models=["openai/open"])
        sent = [r.params.get("max_tokens") for r in server.requests]
    assert sent == [256, 50, 1_000, None]


def test_a_cards_params_max_tokens_bounds_its_worst_case(caplog):
    # every call to this card carries max_tokens=1000 from its params: the hold must count 1000, not 256
    card = Model("a", input_cost_per_token=1e-6, output_cost_per_token=2e-6, params={"max_tokens": 1_000})
    budget = Budget(1.0, pacer="none")
    router = Router([card], encoder=toy_encoder(), budget=budget)
    assert "capped" not in caplog.text  # its params cap it already
    router.route("x" * 40)  # 10 prompt tokens
    assert budget.reserved() == pytest.approx(10 * 1e-6 + 1_000 * 2e-6)


def test_when_every_model_tried_fails_the_error_names_those_the_budget_left_out(server):
    # the async trial: cheap fails, dear's worst case never fitted: the error said nothing of dear
    budget = Budget(1e-4, pacer="none")  # dear's worst case (22 tokens at 1e-5 = 2.2e-4) does not fit
    router = router_for(server, budget, (("broken", 1e-6), ("dear", 1e-5)), policy="cheapest")
    decision = router.route(PROMPT, max_tokens=10)
    assert decision.unaffordable == ("openai/dear",)
    router.release(decision.route_id)
    with pytest.raises(AllModelsFailedError, match=r"left out by the budget when routed: \['openai/dear'\]"):
        router.complete(PROMPT, max_tokens=10)
    assert budget.reserved() == 0.0

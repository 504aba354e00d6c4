"""The learned cost model: what it predicts before and after settled calls, where it learns, its state, and its
inputs to budgets, the decision log and replays."""

from __future__ import annotations

import numpy as np
import pytest

from bandit_router import Model, Router
from bandit_router.budget import Budget, zcl_threshold
from bandit_router.costs import BUCKETS, CostModel, bucket, cost_errors
from bandit_router.errors import ConfigError, StateFormatError
from bandit_router.models import estimate_tokens
from bandit_router.settings import Limits

from .conftest import hashed_bow, make_cards

PROMPT = "Summarise the plot of a long novel about whales in three sentences."
TOKENS = estimate_tokens(PROMPT)


def unpriced(*names: str) -> list[Model]:
    return [Model(n, input_cost_per_token=0.0, output_cost_per_token=0.0, context_window=None) for n in names]


def test_before_any_call_a_priced_model_costs_its_prices_times_the_fixed_length(cards):
    costs = CostModel(cards, expected_output_tokens=300)
    predicted = costs.predict([c.name for c in cards], TOKENS)
    np.testing.assert_allclose(predicted, [c.cost(TOKENS, 300) for c in cards])
    np.testing.assert_allclose(costs.predict(["openai/large"], TOKENS, max_tokens=10), [cards[2].cost(TOKENS, 10)])


def test_settled_calls_teach_a_models_output_length(make_router):
    router = make_router(limits=Limits(expected_output_tokens=256))
    large = router.models["openai/large"]
    for _ in range(50):  # the large model writes 1,000 tokens a call
        decision = router.route(PROMPT, models=["openai/large"])
        router.settle(decision.route_id, large.cost(TOKENS, 1_000))
    decision = router.route(PROMPT)
    assert decision.predicted_cost["openai/large"] == pytest.approx(large.cost(TOKENS, 1_000), rel=0.01)
    small = router.models["openai/small"]  # never settled: the price-based estimate pooled with every model's calls
    assert decision.predicted_cost["openai/small"] == pytest.approx(small.cost(TOKENS, (256 + 50_000) / 51))
    assert decision.predicted_cost["openai/small"] > 3 * small.cost(TOKENS, 256)


def test_prompt_length_buckets_learn_their_own_mean(cards):
    costs = CostModel(cards, bucket_weight=1.0)
    small = cards[0]
    for _ in range(40):
        costs.observe(small.name, 10, small.cost(10, 20))  # short prompts: short answers
        costs.observe(small.name, 2_000, small.cost(2_000, 900))  # long prompts: long answers
    assert bucket(10) != bucket(2_000)
    short, long = costs.predict([small.name], 10)[0], costs.predict([small.name], 2_000)[0]
    flat = CostModel(cards, bucket_weight=1e12)  # one mean per model: both near the mean of 20 and 900 tokens
    for _ in range(40):
        flat.observe(small.name, 10, small.cost(10, 20))
        flat.observe(small.name, 2_000, small.cost(2_000, 900))
    assert small.cost(10, 20) < short < small.cost(10, 40) < flat.predict([small.name], 10)[0]
    assert long == pytest.approx(small.cost(2_000, 900), rel=0.05)


def test_without_prices_costs_are_learned_directly_and_unknown_models_stay_neutral():
    costs = CostModel(unpriced("a", "b", "c"))
    assert costs.predict(["a", "b", "c"], TOKENS).tolist() == [0.0, 0.0, 0.0]  # equal: no model favoured
    costs.observe("a", TOKENS, 40.0)
    costs.observe("b", TOKENS, 300.0)
    costs.observe("b", TOKENS, 500.0)
    assert costs.predict(["a", "b", "c"], TOKENS).tolist() == [40.0, 400.0, 220.0]  # c: the others' mean


def test_a_router_with_price_less_cards_routes_on_learned_costs():
    router = Router(unpriced("a", "b"), encoder=hashed_bow, seed=0, cost_weight=1.0)
    first = router.route(PROMPT)
    assert first.predicted_cost == {"a": 0.0, "b": 0.0}
    router.settle(first.route_id, 2500.0 if first.model == "b" else 40.0)
    other = router.route(PROMPT, models=["a" if first.model == "b" else "b"])
    router.settle(other.route_id, 2500.0 if other.model == "b" else 40.0)
    assert router.route(PROMPT).predicted_cost == {"a": 40.0, "b": 2500.0}


def test_only_the_served_model_learns_and_unsettled_or_released_calls_teach_nothing(make_router):
    router = make_router()
    decision = router.route(PROMPT, models=["openai/small"])
    router.release(decision.route_id)
    router.settle(router.route(PROMPT, models=["openai/medium"]).route_id)  # usage unknown: worst case, not learned
    router.settle(router.route(PROMPT, models=["openai/large"]).route_id, 0.01)
    assert router.costs.state()["n"].sum(axis=1).tolist() == [0, 0, 1]
    with pytest.raises(ConfigError, match="cost must be a finite number >= 0"):
        router.settle(router.route(PROMPT).route_id, -1.0)


def test_state_is_additive_and_saved_with_the_router(make_router, tmp_path):
    one, two, both = (CostModel(make_cards()) for _ in range(3))
    for model, tokens, cost in [("openai/small", 10, 1e-5), ("openai/large", 900, 0.2), ("openai/small", 40, 3e-5)]:
        (one if tokens < 100 else two).observe(model, tokens, cost)
        both.observe(model, tokens, cost)
    one.merge(two.state())
    for key in ("n", "sum"):
        np.testing.assert_allclose(one.state()[key], both.state()[key])
    assert one.state()["n"].shape == (3, BUCKETS)
    with pytest.raises(StateFormatError, match="shape"):
        one.load_state({"n": np.zeros((2, BUCKETS)), "sum": np.zeros((2, BUCKETS))})

    router = make_router()
    router.settle(router.route(PROMPT, models=["openai/large"]).route_id, 0.5)
    router.save(tmp_path / "router.safetensors")
    loaded = Router.load(tmp_path / "router.safetensors", encoder=hashed_bow)
    np.testing.assert_array_equal(loaded.costs.state()["sum"], router.costs.state()["sum"])
    assert loaded.route(PROMPT).predicted_cost == router.route(PROMPT).predicted_cost


def test_models_added_and_removed_at_run_time(make_router):
    router = make_router()
    router.add_model(unpriced("local/llama")[0])
    assert router.costs.state()["n"].shape == (4, BUCKETS)
    router.remove_model("openai/small")
    assert list(router.costs.cards) == ["openai/medium", "openai/large", "local/llama"]


def test_litellm_response_cost_settles_a_call_at_listed_prices_and_card_prices_win_otherwise(make_router):
    listed = Model("openai/gpt-4o-mini")  # LiteLLM's prices, which its own cost of a call uses (cached tokens too)
    router = Router([listed], encoder=hashed_bow, seed=0)
    done = router.complete(PROMPT, mock_response="An answer of a few words.")
    reported = done.response._hidden_params["response_cost"]
    assert listed.listed_prices and reported > 0 and done.cost == pytest.approx(reported)
    assert router.costs.state()["n"].sum() == 1
    discounted = Model("openai/gpt-4o-mini", input_cost_per_token=1e-9, output_cost_per_token=1e-9)  # self-hosted
    done = Router([discounted], encoder=hashed_bow, seed=0).complete(PROMPT, mock_response="An answer.")
    assert not discounted.listed_prices and done.response._hidden_params["response_cost"] > done.cost
    assert done.cost == pytest.approx(discounted.cost(done.usage["prompt_tokens"], done.usage["completion_tokens"]))
    unknown = make_router("random").complete(PROMPT, mock_response="An answer.")  # LiteLLM has no price for it
    card = unknown.decision.model
    assert unknown.cost == pytest.approx(make_cards()[[c.name for c in make_cards()].index(card)].cost(
        unknown.usage["prompt_tokens"], unknown.usage["completion_tokens"]))


def test_reservations_hold_the_worst_case_and_pace_on_the_expected_cost(make_router):
    budget = Budget(1.0, bins=1, ratio_range=(1.0, 100.0))
    budget.reserve(0.5, expected=0.1)
    assert budget.remaining() == pytest.approx(0.5)  # the hard cap counts the worst case
    assert budget.threshold() == pytest.approx(zcl_threshold(0.1, 1.0, 100.0))  # pacing counts the expected cost

    router = make_router(budget=Budget(10.0))
    decision = router.route(PROMPT)
    [(hold, _, _)] = router.gate.held.values()
    assert hold.expected == pytest.approx(decision.predicted_cost[decision.model]) and hold.expected < hold.amount


def test_the_decision_log_records_predicted_and_realised_cost(make_router):
    router = make_router("random", log=":memory:")
    done = router.complete(PROMPT, mock_response="A short answer.")
    [row] = router.log.rows()
    assert row["predicted_cost"] == pytest.approx(done.decision.predicted_cost[done.decision.model])
    assert row["cost"] == pytest.approx(done.cost)
    errors = cost_errors(list(router.log.rows()))
    assert errors[done.decision.model]["calls"] == 1
    assert errors[done.decision.model]["mape"] == pytest.approx(abs(row["predicted_cost"] - row["cost"]) / row["cost"])


def test_cli_prints_the_cost_models_error_from_a_decision_log(make_router, tmp_path, capsys):
    from bandit_router.cli import main

    router = make_router("random", log=tmp_path / "log.sqlite")
    done = [router.complete(PROMPT, mock_response="A short answer.") for _ in range(3)]
    assert main(["costs", str(tmp_path / "log.sqlite")]) == 0
    out = capsys.readouterr().out
    errors = cost_errors(list(router.log.rows()))
    for model in {d.decision.model for d in done}:
        assert f"| {model} | {errors[model]['calls']} |" in out and f"{100 * errors[model]['mape']:.1f}% |" in out
    assert main(["costs", str(tmp_path / "missing.sqlite")]) == 2


def test_cli_costs_says_n_a_for_a_model_whose_every_realised_cost_is_0(tmp_path, capsys):
    from bandit_router.cli import main

    router = Router(unpriced("openai/local-llama"), encoder=hashed_bow, seed=0, log=tmp_path / "log.sqlite")
    router.complete(PROMPT, mock_response="A short answer.")  # a local model: it costs nothing
    assert main(["costs", str(tmp_path / "log.sqlite")]) == 0
    out = capsys.readouterr().out
    assert "| openai/local-llama | 1 |" in out and "n/a (every realised cost is 0) |" in out and "nan" not in out

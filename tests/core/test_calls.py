"""Routed calls through LiteLLM (mock_response: no network), their cost, and the SQLite decision log."""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from bandit_router import (AllModelsFailedError, Budget, ConfigError, DuplicateFeedbackError, FeedbackSettings,
                           Limits, LogSettings, Model, Router, StoreUnavailableError, UnknownRouteError)
from bandit_router.store import SQLiteDecisionLog
from bandit_router.testing import FakeLLMServer, ModelBehavior

from .conftest import hashed_bow, make_cards

CANARY = "canary-7f3a9c-prompt-text please answer"
ANSWER = "The answer is four, and here is why it is four."


def file_bytes(path: Path) -> bytes:
    """The SQLite file and its WAL/SHM companions, where recent writes live before a checkpoint."""
    return b"".join(p.read_bytes() for p in sorted(path.parent.glob(path.name + "*")))


def expected_cost(router: Router, model: str, usage: dict[str, int]) -> float:
    card = router.models[model]
    return usage["prompt_tokens"] * card.input_cost_per_token + usage["completion_tokens"] * card.output_cost_per_token


def rows(path: Path) -> list[dict]:
    with sqlite3.connect(path) as conn:  # a second, independent connection: what another process would read
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM decisions ORDER BY created_at")]


@pytest.fixture
def logged(make_router, tmp_path):
    path = tmp_path / "decisions.sqlite"
    return make_router("random", log=path), path


def test_complete_costs_the_card_prices_times_litellm_usage(logged):
    router, path = logged
    completion = router.complete(CANARY, mock_response=ANSWER)
    model = completion.decision.model
    assert completion.text == ANSWER
    usage = completion.response.usage
    assert completion.usage == {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                                "total_tokens": usage.total_tokens}
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert completion.cost > 0
    assert completion.cost == pytest.approx(expected_cost(router, model, completion.usage), rel=1e-12)
    router.feedback(completion.decision.route_id, 0.75)
    [row] = rows(path)
    assert row["route_id"] == completion.decision.route_id and row["model"] == model
    assert (row["status"], row["score"]) == ("served", 0.75)
    assert row["cost"] == pytest.approx(completion.cost)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (usage.prompt_tokens, usage.completion_tokens)
    assert row["propensity"] == pytest.approx(1 / 3) and row["cost_weight"] == 0.0


async def test_acomplete(logged):
    router, path = logged
    completion = await router.acomplete(CANARY, cost_weight=0.5, mock_response=ANSWER)
    assert completion.text == ANSWER
    assert completion.cost > 0
    assert completion.cost == pytest.approx(expected_cost(router, completion.decision.model, completion.usage))
    [row] = rows(path)
    assert (row["status"], row["cost_weight"]) == ("served", 0.5)
    assert row["cost"] == pytest.approx(completion.cost)


def test_stream(logged):
    router, path = logged
    stream = router.stream(CANARY, mock_response=ANSWER)
    assert stream.cost is None
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == ANSWER
    assert stream.usage["completion_tokens"] > 0
    assert stream.cost > 0 and stream.cost == pytest.approx(expected_cost(router, stream.decision.model, stream.usage))
    router.feedback(stream.decision.route_id, 1.0)
    [row] = rows(path)
    assert (row["status"], row["score"], row["model"]) == ("served", 1.0, stream.decision.model)
    assert row["cost"] == pytest.approx(stream.cost)


async def test_astream(logged):
    router, path = logged
    stream = router.astream(CANARY, mock_response=ANSWER)
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
    assert text == ANSWER
    assert stream.cost > 0 and stream.cost == pytest.approx(expected_cost(router, stream.decision.model, stream.usage))
    [row] = rows(path)
    assert row["status"] == "served" and row["cost"] == pytest.approx(stream.cost)


def test_route_and_feedback_are_logged_without_a_call(logged):
    router, path = logged
    decisions = [router.route(f"question {i}", cost_weight=0.25) for i in range(3)]
    router.feedback(decisions[1].route_id, 0.0)
    logged_rows = {r["route_id"]: r for r in SQLiteDecisionLog(path).rows()}
    assert set(logged_rows) == {d.route_id for d in decisions}
    for d in decisions:
        row = logged_rows[d.route_id]
        assert (row["model"], row["propensity"], row["status"]) == (d.model, d.propensity, "routed")
        assert row["predictions"]["probabilities"] == d.probabilities
        assert row["predictions"]["cost"] == d.predicted_cost
    assert [logged_rows[d.route_id]["score"] for d in decisions] == [None, 0.0, None]


@pytest.mark.parametrize("store_prompts", [False, True])
def test_prompt_text_is_stored_only_on_opt_in(make_router, tmp_path, store_prompts):
    path = tmp_path / "decisions.sqlite"
    router = make_router("random", log=LogSettings(path, store_prompts=store_prompts))
    completion = router.complete(CANARY, mock_response=ANSWER)
    router.stream(CANARY + " streamed", mock_response=ANSWER)
    for _ in router.stream(CANARY + " streamed", mock_response=ANSWER):
        pass
    router.feedback(completion.decision.route_id, 0.5)
    assert (CANARY.encode() in file_bytes(path)) is store_prompts
    router.log.close()  # checkpoint the WAL into the main file
    assert (CANARY.encode() in file_bytes(path)) is store_prompts
    assert all((r["prompt"] is not None) is store_prompts for r in rows(path))


def test_vectors_are_stored_only_on_opt_in(make_router, tmp_path):
    plain = make_router(log=tmp_path / "a.sqlite")
    plain.route(CANARY)
    assert [r["vector"] for r in plain.log.rows()] == [None]
    with_vectors = make_router(log=LogSettings(tmp_path / "b.sqlite", store_vectors=True))
    with_vectors.route(CANARY)
    [row] = with_vectors.log.rows()
    np.testing.assert_allclose(row["vector"], hashed_bow(CANARY), rtol=1e-6)


def test_a_fallback_keeps_the_logged_prompt_vector_and_failure(tmp_path):
    """After a provider failure the row is re-pointed at the model that served, keeping what was logged."""
    with FakeLLMServer({"down": ModelBehavior(fail_status=500), "up": ModelBehavior()}) as server:
        cards = [Model(f"openai/{name}", input_cost_per_token=1e-6, output_cost_per_token=2e-6,
                       api_base=server.base_url, api_key="sk-test") for name in ("down", "up")]
        router = Router(cards, policy="fixed", policy_settings={"model": "openai/down"}, encoder=hashed_bow,
                        seed=0, log=LogSettings(tmp_path / "log.sqlite", store_prompts=True, store_vectors=True))
        completion = router.complete(CANARY, num_retries=0)
    assert completion.decision.model == "openai/up" and completion.decision.failed == ("openai/down",)
    assert router.failures == {"openai/down": 1, "openai/up": 0}
    [row] = router.log.rows()
    assert (row["model"], row["status"], row["failed"]) == ("openai/up", "served", ["openai/down"])
    assert row["error"] == "InternalServerError"
    assert row["prompt"] == CANARY
    np.testing.assert_allclose(row["vector"], hashed_bow(CANARY), rtol=1e-6)
    assert row["cost"] > 0 and row["cost"] == pytest.approx(completion.cost)
    router.feedback(completion.decision.route_id, 1.0)  # the feedback teaches the model that answered


def test_api_keys_never_reach_the_log(tmp_path):
    cards = [Model("openai/keyed", input_cost_per_token=1e-6, output_cost_per_token=1e-6, api_key="sk-secret-123")]
    router = Router(cards + make_cards(), encoder=hashed_bow, seed=0,
                    log=LogSettings(tmp_path / "log.sqlite", store_prompts=True))
    router.complete(CANARY, models=["openai/keyed"], mock_response=ANSWER)
    assert b"sk-secret-123" not in file_bytes(tmp_path / "log.sqlite")


def test_a_call_no_model_could_serve_teaches_nothing_even_with_expired_reward(tmp_path):
    """All models fail: the decision stops waiting without a reward, and rating it says why."""
    with FakeLLMServer({"down": ModelBehavior(fail_status=500), "also-down": ModelBehavior(fail_status=503)}) as server:
        cards = [Model(f"openai/{name}", input_cost_per_token=1e-6, output_cost_per_token=2e-6,
                       api_base=server.base_url, api_key="sk-test") for name in ("down", "also-down")]
        router = Router(cards, encoder=hashed_bow, seed=0, feedback=FeedbackSettings(expired_reward=0.0),
                        log=tmp_path / "log.sqlite")
        before = {k: v.copy() for k, v in router.policy.state().items()}
        with pytest.raises(AllModelsFailedError) as failure:
            router.complete(CANARY, num_retries=0)
    assert set(failure.value.failures) == {"openai/down", "openai/also-down"}
    assert all(np.array_equal(before[k], v) for k, v in router.policy.state().items())
    [row] = router.log.rows()
    assert row["status"] == "failed"
    with pytest.raises(UnknownRouteError, match="call failed"):
        router.feedback(row["route_id"], 1.0)


def test_a_call_stops_litellm_printing_its_banner_on_failures(make_router, monkeypatch):
    import litellm

    monkeypatch.setattr(litellm, "suppress_debug_info", False)
    make_router().complete("hello", mock_response="hi")
    assert litellm.suppress_debug_info is True  # the router reports the failures it recovers from itself


def test_a_model_that_keeps_failing_sits_out_a_cooldown(caplog):
    """After `cooldown_after` failed calls in a row a model is not routed to for `cooldown` seconds (each call
    would wait out its failure first), then one call tries it again; a success ends its streak."""
    now = [0.0]
    with FakeLLMServer({"down": ModelBehavior(fail_status=500), "up": ModelBehavior()}) as server:
        cheap, dear = (Model(f"openai/{name}", input_cost_per_token=price, output_cost_per_token=price,
                             api_base=server.base_url, api_key="sk-test") for name, price in (("down", 1e-7),
                                                                                              ("up", 1e-5)))
        router = Router([cheap, dear], policy="cheapest", encoder=hashed_bow, seed=0,
                        limits=Limits(cooldown=30.0, cooldown_after=3))
        router.caller.cooldowns.clock = lambda: now[0]
        first = [router.complete(f"q {i}", num_retries=0).decision for i in range(3)]
        assert all(d.failed == ("openai/down",) for d in first)  # tried first each time, then the fallback
        assert "openai/down failed 3 times in a row: not routed to for 30 s" in caplog.text
        resting = router.complete("q 3", num_retries=0).decision
        assert (resting.model, resting.failed, resting.probabilities) == ("openai/up", (), {"openai/up": 1.0})
        server.set_behavior("up", fail_status=500, fail_times=1)
        with pytest.raises(AllModelsFailedError, match=r"sitting out a cooldown .*\['openai/down'\]"):
            router.complete("q 3b", num_retries=0)  # the error names the model it did not try
        assert router.route("q 4", models=["openai/down"]).model == "openai/down"  # the only one allowed
        now[0] = 31.0
        assert router.complete("q 5", num_retries=0).decision.failed == ("openai/down",)  # tried again: still down
        assert router.route("q 6").model == "openai/up"  # and back to rest at once
        server.set_behavior("down", fail_status=None)
        now[0] = 62.0
        assert [router.complete(f"q {i}", num_retries=0).decision.model for i in (7, 8)] == ["openai/down"] * 2
    assert router.failures == {"openai/down": 4, "openai/up": 1}


def test_max_completion_tokens_limits_like_max_tokens(make_router):
    """OpenAI's newer name for the answer's limit: it sets eligibility and the worst-case cost as max_tokens does."""
    router = make_router("random")
    completion = router.complete("hi", max_completion_tokens=5_000, mock_response=ANSWER)
    assert set(completion.decision.probabilities) == {"openai/large"}  # small writes 1,000, medium 4,000
    with pytest.raises(ConfigError, match="max_tokens must be an integer >= 1"):  # 0 is not "no limit"
        router.complete("hi", max_tokens=0, mock_response=ANSWER)


def test_a_cost_settled_after_route_is_logged_beside_the_prediction(make_router, tmp_path):
    router = make_router(log=tmp_path / "log.sqlite")
    decision = router.route(CANARY)
    router.settle(decision.route_id, 0.002)
    [row] = router.log.rows()
    assert (row["status"], row["cost"], row["prompt_tokens"]) == ("served", 0.002, None)
    assert row["predicted_cost"] == pytest.approx(decision.predicted_cost[decision.model])
    router.settle(decision.route_id, 0.5)  # refused (settled already): the log keeps the real cost
    served = router.complete(CANARY, mock_response=ANSWER)
    router.settle(served.decision.route_id, 0.5)
    logged = {row["route_id"]: row["cost"] for row in router.log.rows()}
    assert logged == {decision.route_id: 0.002, served.decision.route_id: pytest.approx(served.cost)}


def test_a_stream_that_breaks_is_a_failure_of_its_model_and_one_closed_early_is_not(make_router, tmp_path,
                                                                                    monkeypatch):
    import litellm

    def stream(**kwargs):
        yield litellm.ModelResponseStream(choices=[{"index": 0, "delta": {"content": "partial "}}])
        if kwargs["messages"][-1]["content"] == "breaks":
            raise litellm.APIConnectionError("connection reset by peer", "openai", kwargs["model"])
        yield litellm.ModelResponseStream(choices=[{"index": 0, "delta": {"content": "rest"}}])

    monkeypatch.setattr(litellm, "completion", stream)
    router = make_router(log=tmp_path / "log.sqlite")
    routed = router.stream("breaks")
    with pytest.raises(litellm.APIConnectionError):
        list(routed)
    model = routed.decision.model
    assert router.failures[model] == 1
    assert [(r["status"], r["error"]) for r in router.log.rows()] == [("failed", "APIConnectionError")]
    chunks = iter(router.stream("closed early"))
    next(chunks)
    chunks.close()  # the consumer stopped reading: not the model's failure
    assert sum(router.failures.values()) == 1


async def test_a_call_cancelled_before_its_answer_charges_its_hold_and_stops_waiting():
    """asyncio.wait_for timeouts and task.cancel(): the hold is charged at its worst case (the provider may bill
    the request) and the decision, with nothing to rate, stops waiting; it used to hold both for pending_ttl."""
    import asyncio

    from bandit_router import Budget

    with FakeLLMServer({"slow": ModelBehavior(delay=2.0)}) as server:
        card = Model("openai/slow", input_cost_per_token=1e-6, output_cost_per_token=1e-6, api_base=server.base_url,
                     api_key="sk-test", max_output_tokens=100)
        budget = Budget(1.0)
        router = Router([card], encoder=hashed_bow, seed=0, budget=budget)
        for call in (lambda: router.acomplete("a question"), lambda: anext(router.astream("a question").__aiter__())):
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(call(), 0.2)
        assert budget.reserved() == 0.0 and budget.spent() == pytest.approx(2 * (3e-6 + 100e-6))
        assert not router.ledger.waiting and not router.gate.held
        [route_id, _] = list(router.ledger.closed)
        with pytest.raises(UnknownRouteError, match="its call was cancelled before the answer"):
            router.feedback(route_id, 1.0)


def test_a_failing_model_is_replaced_at_once_not_retried():
    """The core router, like the wrappers, passes max_retries=0: the OpenAI SDK's two retries with backoff used
    to come first (three requests and about 2 s per failing call); a call or card may still ask for retries."""
    with FakeLLMServer({"down": ModelBehavior(fail_status=500), "up": ModelBehavior()}) as server:
        cards = [Model(f"openai/{name}", input_cost_per_token=price, output_cost_per_token=price,
                       api_base=server.base_url, api_key="sk-test") for name, price in (("down", 1e-7), ("up", 1e-5))]
        router = Router(cards, policy="cheapest", encoder=hashed_bow, seed=0)
        assert router.complete("hi").decision.model == "openai/up"
        assert [r.model for r in server.requests] == ["down", "up"]
        router.complete("hi", max_retries=1)
        assert [r.model for r in server.requests[2:]] == ["down", "down", "up"]


def test_a_cooldown_is_logged_once_as_it_starts(caplog):
    from bandit_router.calls import Cooldowns

    now = [0.0]
    cooldowns = Cooldowns(30.0, 3, clock=lambda: now[0])
    for _ in range(10):  # calls already under way go on failing
        cooldowns.failed("m")
    assert caplog.text.count("not routed to") == 1 and cooldowns.until["m"] == 30.0
    now[0] = 31.0
    cooldowns.failed("m")
    assert caplog.text.count("not routed to") == 2


def test_a_fixed_model_sitting_out_a_cooldown_is_still_tried_and_falls_back():
    """policy="fixed" needs its model: during the model's cooldown it is tried (and its failure falls back) as
    before the cooldown, instead of every request failing with NoEligibleModelError for 30 s."""
    with FakeLLMServer({"down": ModelBehavior(fail_status=500), "up": ModelBehavior()}) as server:
        cards = [Model(f"openai/{name}", input_cost_per_token=1e-6, output_cost_per_token=1e-6,
                       api_base=server.base_url, api_key="sk-test") for name in ("down", "up")]
        router = Router(cards, policy="fixed", policy_settings={"model": "openai/down"}, encoder=hashed_bow, seed=0)
        served = [router.complete(f"q {i}").decision for i in range(5)]
    assert [(d.model, d.failed) for d in served] == [("openai/up", ("openai/down",))] * 5


def test_replace_model_moves_a_model_to_another_endpoint_and_keeps_what_was_learned():
    with FakeLLMServer({"m": ModelBehavior()}) as old, FakeLLMServer({"m": ModelBehavior()}) as new:
        card = Model("openai/m", input_cost_per_token=1e-6, output_cost_per_token=2e-6, api_base=old.base_url,
                     api_key="sk-test")
        other = Model("openai/other", input_cost_per_token=1e-6, output_cost_per_token=2e-6)
        router = Router([card, other], policy="fixed", policy_settings={"model": "openai/m"}, encoder=hashed_bow,
                        seed=0)
        router.complete(CANARY)
        learned = router.costs.state()["n"].sum()
        router.replace_model(dataclasses.replace(card, api_base=new.base_url))
        router.complete(CANARY)
        assert (len(old.requests), len(new.requests)) == (1, 1)  # the second call went to the new endpoint
        assert router.models["openai/m"].api_base == new.base_url
    assert router.costs.state()["n"].sum() == learned + 1  # output lengths learned before are kept
    with pytest.raises(ConfigError, match="unknown model 'openai/gone'"):
        router.replace_model(dataclasses.replace(card, name="openai/gone"))


def test_replace_model_relearns_the_cost_when_a_model_changes_between_priced_and_unpriced():
    priced = Model("openai/m", input_cost_per_token=1e-6, output_cost_per_token=2e-6)
    router = Router([priced], encoder=hashed_bow, seed=0)
    router.complete(CANARY, mock_response=ANSWER)
    assert router.costs.state()["n"].sum() == 1
    router.replace_model(dataclasses.replace(priced, input_cost_per_token=2e-6))
    assert router.costs.state()["n"].sum() == 1  # still priced: the learned output lengths stand
    router.replace_model(dataclasses.replace(priced, input_cost_per_token=0.0, output_cost_per_token=0.0))
    assert router.costs.state()["n"].sum() == 0  # now unpriced: its means were output tokens, not costs


def test_a_model_removed_while_its_call_is_under_way_answers_and_is_charged_its_cost():
    with FakeLLMServer({"slow": ModelBehavior(delay=1.0), "other": ModelBehavior()}) as server:
        slow, other = (Model(f"openai/{name}", input_cost_per_token=1e-6, output_cost_per_token=2e-6,
                             api_base=server.base_url, api_key="sk-test") for name in ("slow", "other"))
        budget = Budget(1.0, pacer="none")
        router = Router([slow, other], policy="fixed", policy_settings={"model": "openai/slow"},
                        encoder=hashed_bow, seed=0, budget=budget)
        with ThreadPoolExecutor(1) as pool:
            call = pool.submit(router.complete, CANARY)
            while not server.requests:  # the call is under way
                time.sleep(0.01)
            router.remove_model("openai/slow")
            done = call.result(timeout=10)  # a KeyError on the removed card before
        assert done.decision.model == "openai/slow" and done.cost > 0
        assert budget.reserved() == 0 and budget.spent() == pytest.approx(done.cost)
        assert "openai/slow" not in router.failures
        with pytest.raises(UnknownRouteError, match="its model was removed"):
            router.feedback(done.decision.route_id, 1.0)


def test_a_stream_routed_to_a_model_removed_before_it_was_read_goes_to_the_next_best():
    with FakeLLMServer({"gone": ModelBehavior(), "other": ModelBehavior()}) as server:
        gone, other = (Model(f"openai/{name}", input_cost_per_token=1e-6, output_cost_per_token=2e-6,
                             api_base=server.base_url, api_key="sk-test") for name in ("gone", "other"))
        router = Router([gone, other], encoder=hashed_bow, seed=0, budget=Budget(1.0, pacer="none"))
        stream = router.stream(CANARY)
        removed = stream.decision.model
        router.remove_model(removed)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        assert text and stream.decision.model == next(iter(router.models))  # the one left
        assert [f"openai/{r.model}" for r in server.requests] == [stream.decision.model]
        assert router.budget.reserved() == 0 and router.budget.spent() == pytest.approx(stream.cost)


def test_a_call_under_way_when_its_model_is_replaced_is_charged_at_the_card_it_was_made_with():
    with FakeLLMServer({"slow": ModelBehavior(delay=1.0)}) as server:
        old = Model("openai/slow", input_cost_per_token=1e-6, output_cost_per_token=2e-6, api_base=server.base_url,
                    api_key="sk-test")
        router = Router([old], encoder=hashed_bow, seed=0)
        with ThreadPoolExecutor(1) as pool:
            call = pool.submit(router.complete, CANARY)
            while not server.requests:  # the call is under way
                time.sleep(0.01)
            router.replace_model(dataclasses.replace(old, input_cost_per_token=1e-4, output_cost_per_token=2e-4))
            done = call.result(timeout=10)
    assert done.cost == pytest.approx(old.cost(done.usage["prompt_tokens"], done.usage["completion_tokens"]))


class FlakyBudget(Budget):
    """A budget whose store refuses the first `refusals` charges, as a shared ledger's during a failover."""

    def __init__(self, *args, refusals: int = 1, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.refusals = refusals

    def settle(self, reservation, cost: float) -> None:
        if self.refusals:
            self.refusals -= 1
            raise StoreUnavailableError("the ledger's store is down")
        super().settle(reservation, cost)


def test_an_answer_whose_charge_the_store_refuses_is_served_and_charged_when_it_answers(make_router, caplog):
    budget = FlakyBudget(1.0)
    router = make_router("random", budget=budget)
    completion = router.complete(CANARY, mock_response=ANSWER)  # served: failing it would have it asked and paid again
    assert completion.text == ANSWER and completion.cost > 0
    assert budget.spent() == 0 and budget.reserved() > 0  # the charge waits for the store
    assert "refused the charge" in caplog.text and CANARY not in caplog.text
    router.route("the next request")  # retries what is owed
    assert budget.spent() == pytest.approx(completion.cost)
    assert not router.gate.owed


class FullLog(SQLiteDecisionLog):
    """A decision log on a full disk: it takes new decisions (before any call) and nothing after."""

    def _refuse(self, *args) -> None:
        raise StoreUnavailableError("SQLite file 'decisions.sqlite' failed: database or disk is full")

    record_call = record_feedback = record_failure = _refuse


def test_what_the_log_cannot_record_after_the_call_stands(make_router, tmp_path, caplog):
    router = make_router("random", log=FullLog(tmp_path / "decisions.sqlite"))
    completion = router.complete(CANARY, mock_response=ANSWER)
    assert completion.text == ANSWER  # not an error the caller would retry (and pay for) again
    router.feedback(completion.decision.route_id, 1.0)  # applied: a retry would be told it was rated already
    with pytest.raises(DuplicateFeedbackError):
        router.feedback(completion.decision.route_id, 1.0)
    assert caplog.text.count("could not record an outcome") == 2


def test_tool_specs_count_towards_the_prompt_that_a_budget_holds(make_router):
    """An agent sends its tools' schemas with every step: the hold and the predicted cost count them."""
    router = make_router("fixed", policy_settings={"model": "openai/large"}, budget=Budget(1.0))
    tools = [{"type": "function", "function": {"name": f"tool_{i}", "description": "does a thing " * 40,
                                               "parameters": {"type": "object", "properties": {}}}}
             for i in range(20)]
    bare = router.route("use a tool", tools=True, max_tokens=10)
    sized = router.route("use a tool", tools=tools, max_tokens=10)
    card = router.models["openai/large"]
    extra = sized.predicted_cost["openai/large"] - bare.predicted_cost["openai/large"]
    assert extra > 2_000 * card.input_cost_per_token  # about 11,000 characters of schemas
    held = [router.gate.held[d.route_id][0].amount for d in (bare, sized)]
    assert held[1] - held[0] == pytest.approx(extra)


def test_a_request_one_model_cannot_take_goes_to_another_without_benching_it():
    """An o-series model refuses temperature (400 unsupported_parameter; that used to fail the whole call) and a
    small window refuses a long prompt: the call falls back, the failures are counted, and no cooldown benches the
    model for the requests it can take; a replaced card starts without a cooldown."""
    with FakeLLMServer({"reasoner": ModelBehavior(rejects=("temperature",)), "small": ModelBehavior(context_window=8),
                        "big": ModelBehavior()}) as server:
        cards = [Model(f"openai/{name}", input_cost_per_token=price, output_cost_per_token=price,
                       api_base=server.base_url, api_key="sk-test")
                 for name, price in (("reasoner", 1e-8), ("small", 1e-7), ("big", 1e-5))]
        router = Router(cards, policy="cheapest", encoder=hashed_bow, seed=0, limits=Limits(cooldown_after=2))
        for i in range(3):
            completion = router.complete(f"a question of rather more than eight words, number {i}", temperature=0.2)
            assert completion.decision.failed == ("openai/reasoner", "openai/small")
            assert completion.decision.model == "openai/big"
        assert router.failures == {"openai/reasoner": 3, "openai/small": 3, "openai/big": 0}
        assert router.complete("hi").decision.model == "openai/reasoner"  # not benched
        router.caller.cooldowns.failed("openai/small")
        router.caller.cooldowns.failed("openai/small")  # benched (two failures in a row) ...
        assert router.route("hi", models=["openai/small", "openai/big"]).model == "openai/big"
        router.replace_model(dataclasses.replace(router.models["openai/small"], api_base=server.base_url))
        assert router.route("hi", models=["openai/small", "openai/big"]).model == "openai/small"  # ... a new card


def test_a_rate_limited_model_sits_out_what_its_provider_asks(caplog):
    """A 429 with Retry-After: the model sits out that long at once, not after three failures in a row."""
    now = [0.0]
    with FakeLLMServer({"busy": ModelBehavior(fail_status=429, fail_times=1, retry_after=5), "up": ModelBehavior()}) \
            as server:
        cards = [Model(f"openai/{name}", input_cost_per_token=price, output_cost_per_token=price,
                       api_base=server.base_url, api_key="sk-test") for name, price in (("busy", 1e-7), ("up", 1e-5))]
        router = Router(cards, policy="cheapest", encoder=hashed_bow, seed=0, limits=Limits(cooldown_after=3))
        router.caller.cooldowns.clock = lambda: now[0]
        assert router.complete("q 0").decision.failed == ("openai/busy",)
        assert "openai/busy was told to retry after 5 s: not routed to for 5 s" in caplog.text
        assert router.route("q 1").model == "openai/up"
        now[0] = 5.5
        assert router.complete("q 2").decision.model == "openai/busy"  # back, and served
        unlimited = Router(cards, policy="cheapest", encoder=hashed_bow, seed=0, limits=Limits(cooldown=0))
        server.set_behavior("busy", fail_times=1)
        assert unlimited.complete("q 3").decision.failed == ("openai/busy",)
        assert unlimited.route("q 4").model == "openai/busy"  # cooldown=0: never benched

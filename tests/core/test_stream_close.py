"""Closing routed streams (`close`/`aclose`, `with`/`async with`): a stream never read releases its budget hold
and its decision stops waiting (they used to last until pending_ttl, a day); one read part-way is charged its
worst case once; one read to its end is left as it is; a stream is read once (real LiteLLM calls to the local
FakeLLMServer)."""

import asyncio
import gc

import litellm
import pytest

from bandit_router import Budget, LogSettings, Model, Router
from bandit_router.costs import cost_errors
from bandit_router.errors import UnknownRouteError
from bandit_router.testing import FakeLLMServer, ModelBehavior

from ..fakes import hashed_bow

litellm.suppress_debug_info = True
PROMPT = "Summarise internationalisation considerations"


@pytest.fixture
def server():
    with FakeLLMServer({"echo": ModelBehavior()}) as srv:
        yield srv


@pytest.fixture
def budget() -> Budget:
    return Budget(1.0, pacer="none")


@pytest.fixture
def router(server, budget) -> Router:
    card = Model("openai/echo", input_cost_per_token=1e-6, output_cost_per_token=1e-6, api_base=server.base_url,
                 api_key="sk-test", context_window=10_000, max_output_tokens=1_000)
    return Router([card], encoder=hashed_bow, seed=0, budget=budget)


def assert_released(router: Router, budget: Budget, server, route_id: str) -> None:
    """Nothing was requested or charged, no hold is left and the decision no longer waits for feedback."""
    assert not server.requests
    assert budget.reserved() == 0.0 and budget.total_spent() == 0.0 and not router.gate.held
    assert not router.ledger.is_waiting(route_id)
    with pytest.raises(UnknownRouteError, match="closed before it was read"):
        router.feedback(route_id, 1.0)


def test_closing_a_stream_never_read_releases_its_hold_and_ends_its_decision(router, budget, server):
    stream = router.stream(PROMPT, max_tokens=20)
    assert budget.reserved() > 0 and router.ledger.is_waiting(stream.decision.route_id)
    stream.close()
    assert_released(router, budget, server, stream.decision.route_id)
    stream.close()  # idempotent
    assert budget.total_spent() == 0.0
    with pytest.raises(RuntimeError, match="was already closed: a stream is read once"):
        iter(stream)


def test_a_stream_whose_iterator_never_started_is_released_too(router, budget, server):
    stream = router.stream(PROMPT, max_tokens=20)
    chunks = iter(stream)  # made, never advanced: no request was sent
    stream.close()
    assert_released(router, budget, server, stream.decision.route_id)
    assert list(chunks) == []


def test_leaving_a_with_block_closes_the_stream_also_on_an_error(router, budget, server):
    with router.stream(PROMPT, max_tokens=20) as stream:
        pass
    assert_released(router, budget, server, stream.decision.route_id)
    with pytest.raises(ValueError, match="the caller's own error"):
        with router.stream(PROMPT, max_tokens=20) as stream:
            raise ValueError("the caller's own error")
    assert_released(router, budget, server, stream.decision.route_id)


def test_closing_a_stream_part_way_charges_its_worst_case_once_and_it_can_still_be_rated(router, budget, server):
    stream = router.stream(PROMPT, max_tokens=20)
    held = budget.reserved()
    chunks = iter(stream)
    next(chunks)
    stream.close()
    assert budget.reserved() == 0.0 and budget.total_spent() == held and stream.cost == held  # what it was charged
    stream.close()
    assert budget.total_spent() == held
    assert sum(router.failures.values()) == 0  # the consumer stopped reading: not the model's failure
    assert list(chunks) == []
    with pytest.raises(ValueError, match="the caller's own error"):
        with router.stream(PROMPT, max_tokens=20) as second:
            next(iter(second))
            raise ValueError("the caller's own error")
    assert budget.reserved() == 0.0 and budget.total_spent() == pytest.approx(2 * held)
    assert len(server.requests) == 2
    router.feedback(stream.decision.route_id, 1.0)  # a partial answer can still be rated


def test_a_stream_left_part_way_without_close_is_still_charged_at_once(router, budget):
    """The stream holds its iteration weakly: dropping the iteration ends it at once, as before close existed
    (a strong reference would be a cycle, ended only by the garbage collector)."""
    stream, collecting = router.stream(PROMPT, max_tokens=20), gc.isenabled()
    gc.disable()
    try:
        for _ in stream:
            break
        assert budget.reserved() == 0.0 and budget.total_spent() > 0
    finally:
        if collecting:
            gc.enable()


def test_closing_a_stream_read_to_its_end_changes_nothing(router, budget, server):
    with router.stream(PROMPT, max_tokens=20) as stream:
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text and stream.cost > 0 and budget.total_spent() == pytest.approx(stream.cost, rel=1e-12)
    stream.close()
    assert budget.total_spent() == pytest.approx(stream.cost, rel=1e-12) and budget.reserved() == 0.0
    router.feedback(stream.decision.route_id, 1.0)


def test_a_stream_is_read_once(router, budget, server):
    """A second iteration used to call the next model in the order, or fail, on a decision already settled."""
    stream = router.stream(PROMPT, max_tokens=20)
    assert list(stream)
    with pytest.raises(RuntimeError, match="was already iterated: a stream is read once"):
        list(stream)
    assert len(server.requests) == 1 and budget.total_spent() == pytest.approx(stream.cost, rel=1e-12)


async def test_async_streams_close_alike(router, budget, server):
    async with router.astream(PROMPT, max_tokens=20) as stream:
        pass
    assert_released(router, budget, server, stream.decision.route_id)
    await stream.aclose()
    with pytest.raises(RuntimeError, match="was already closed"):
        stream.__aiter__()

    stream = router.astream(PROMPT, max_tokens=20)
    held = budget.reserved()
    chunks = stream.__aiter__()
    await anext(chunks)
    await stream.aclose()
    await stream.aclose()
    assert budget.reserved() == 0.0 and budget.total_spent() == held and stream.cost == held

    async with router.astream(PROMPT, max_tokens=20) as stream:
        async for _ in stream:
            break  # the iteration is dropped: leaving the block charges it at once, not when the loop finalizes it
    assert budget.reserved() == 0.0 and budget.total_spent() == pytest.approx(2 * held) and stream.cost == held
    for _ in range(10):  # ... and the loop's finalizing it later charges nothing more
        await asyncio.sleep(0)
    assert budget.total_spent() == pytest.approx(2 * held)

    async with router.astream(PROMPT, max_tokens=20) as stream:
        assert [chunk async for chunk in stream]
    assert stream.cost > 0 and budget.total_spent() == pytest.approx(2 * held + stream.cost, rel=1e-12)
    with pytest.raises(RuntimeError, match="was already iterated"):
        stream.__aiter__()
    assert len(server.requests) == 3


async def test_an_async_stream_cancelled_before_its_first_chunk_shows_its_charge(router, budget, server):
    server.set_behavior("echo", delay=5.0)
    stream = router.astream(PROMPT, max_tokens=20)
    held = budget.reserved()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(anext(stream.__aiter__()), 0.3)
    assert budget.reserved() == 0.0 and budget.total_spent() == held and stream.cost == held


def test_a_stream_closed_part_way_is_logged_at_its_charge_and_can_be_rated_after_a_restart(server, budget, tmp_path):
    card = Model("openai/echo", input_cost_per_token=1e-6, output_cost_per_token=1e-6, api_base=server.base_url,
                 api_key="sk-test", context_window=10_000, max_output_tokens=1_000)
    log = LogSettings(tmp_path / "log.sqlite", store_vectors=True)
    router = Router([card], encoder=hashed_bow, seed=0, budget=budget, log=log)
    with router.stream(PROMPT, max_tokens=20) as stream:
        next(iter(stream))
    [row] = router.log.rows()
    assert (row["status"], row["cost"], row["error"]) == ("served", stream.cost, "cut")  # it was 'routed', no cost
    assert cost_errors([row]) == {}  # a charged worst case is not a realised cost
    router.save(tmp_path / "router.safetensors")
    restarted = Router.load(tmp_path / "router.safetensors", encoder=hashed_bow, log=log,
                            api_bases={"openai/echo": server.base_url})
    assert restarted.restore_pending() == 1
    restarted.feedback(stream.decision.route_id, 1.0)

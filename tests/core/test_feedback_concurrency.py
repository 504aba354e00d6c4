"""Feedback under concurrency: ratings given at once to one run (RunRoutes, FeedbackHandler) apply one after the
other, never a mix of both; Evaluator.wait's timeout bounds the whole wait."""

from __future__ import annotations

import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import pytest

from bandit_router import DuplicateFeedbackError, FeedbackSettings, Router, UnknownRouteError
from bandit_router.errors import FeedbackLimitError
from bandit_router.feedback import Evaluator, RunRoutes

from .conftest import make_cards

STEPS = 40
RATERS = 8


def make_router(**kwargs: Any) -> Router:
    return Router(make_cards(), encoder="hashing:64", seed=0, **kwargs)


def spy_feedback(router: Router, jitter: float = 0.0, seed: int = 0) -> list[tuple[str, float]]:
    """(route_id, score) of every rating the router accepted; each rating first sleeps up to `jitter` seconds
    (seeded), so ratings given at once interleave in many ways."""
    applied: list[tuple[str, float]] = []
    feedback = router.feedback
    rng = random.Random(seed)

    def spy(route_id: str, score: float, **kwargs: Any) -> None:
        time.sleep(rng.random() * jitter)
        feedback(route_id, score, **kwargs)
        applied.append((route_id, score))  # list.append is atomic

    router.feedback = spy  # type: ignore[method-assign]
    return applied


def agent_run(router: Router, runs: RunRoutes, run: Any, steps: int = STEPS) -> list[str]:
    """A top-level run whose `steps` child runs each made one routed call; their route_ids, oldest first."""
    runs.start(run)
    route_ids = []
    for i in range(steps):
        step = (run, i)
        runs.start(step, run)
        route_ids.append(router.route(f"task step {i}").route_id)
        runs.record(step, route_ids[-1])
    return route_ids


def rate_at_once(rate: Callable[[float], list[str]], scores: list[float],
                 stagger: float = 0.0) -> list[list[str] | BaseException]:
    """Call rate(score) for every score from its own thread, all released at once, then each delayed by up to
    `stagger` seconds (evenly spread); each result or error."""
    barrier = threading.Barrier(len(scores))

    def one(i: int) -> list[str] | BaseException:
        barrier.wait()
        time.sleep(stagger * i / len(scores))
        try:
            return rate(scores[i])
        except Exception as error:  # noqa: BLE001 (collected for the assertions)
            return error

    with ThreadPoolExecutor(len(scores)) as pool:
        return list(pool.map(one, range(len(scores))))


def assert_one_rating_won(results: list[list[str] | BaseException], scores: list[float], route_ids: list[str],
                          applied: list[tuple[str, float]]) -> None:
    winners = [i for i, result in enumerate(results) if not isinstance(result, BaseException)]
    assert len(winners) == 1, results
    assert results[winners[0]] == route_ids
    assert all(isinstance(r, DuplicateFeedbackError) for i, r in enumerate(results) if i != winners[0]), results
    assert sorted(applied) == sorted((route_id, scores[winners[0]]) for route_id in route_ids)


def test_a_rating_given_while_another_is_being_applied_applies_nothing() -> None:
    """The user trial, staged: the second rating arrives once the first has rated one of the run's 40 decisions.
    Before the fix it found 39 still waiting and rated them: the run ended with 1 decision at 1.0, 39 at 0.0."""
    router = make_router()
    runs = RunRoutes(router)
    route_ids = agent_run(router, runs, "run")
    one_rated, second_checked = threading.Event(), threading.Event()
    feedback, pending = router.feedback, router.pending
    applied: list[tuple[str, float]] = []

    def first_pauses(route_id: str, score: float, **kwargs: Any) -> None:
        feedback(route_id, score, **kwargs)
        applied.append((route_id, score))
        if route_id == route_ids[0]:
            one_rated.set()
            second_checked.wait(0.5)  # with the fix the second rating waits for this one: this times out

    def spy_pending(route_id: str) -> bool:
        if route_id == route_ids[-1] and one_rated.is_set():
            second_checked.set()  # the second rating has checked which decisions still wait
        return pending(route_id)

    router.feedback, router.pending = first_pauses, spy_pending  # type: ignore[method-assign]

    def second() -> list[str]:
        assert one_rated.wait(10)
        return runs.feedback("run", 0.0)

    with ThreadPoolExecutor(1) as pool:
        late = pool.submit(second)
        assert runs.feedback("run", 1.0) == route_ids
        with pytest.raises(DuplicateFeedbackError):
            late.result(timeout=10)
    assert applied == [(route_id, 1.0) for route_id in route_ids]


@pytest.mark.parametrize("trial", range(5))
def test_ratings_of_one_run_given_at_once_apply_one_score_to_the_whole_run(trial: int) -> None:
    router = make_router()
    runs = RunRoutes(router)
    applied = spy_feedback(router, jitter=0.001, seed=trial)
    run = uuid.uuid4()
    route_ids = agent_run(router, runs, run)
    scores = [i / (RATERS - 1) for i in range(RATERS)]
    # the raters arrive while the first is rating (40 ratings, each pausing up to 1 ms), as in the user trial
    results = rate_at_once(lambda score: runs.feedback(run, score), scores, stagger=0.02)
    assert_one_rating_won(results, scores, route_ids, applied)
    assert not any(router.pending(r) for r in route_ids)


def test_a_run_and_a_step_inside_it_rated_at_once_apply_one_after_the_other() -> None:
    for _ in range(5):
        router = make_router()
        runs = RunRoutes(router)
        applied = spy_feedback(router, jitter=0.001)
        run = uuid.uuid4()
        route_ids = agent_run(router, runs, run, steps=10)
        step = (run, 9)  # the newest step: rated first, it leaves the run's other 9 steps to the run's rating
        results = rate_at_once(lambda score: runs.feedback(run if score else step, score), [1.0, 0.0])
        by_score = dict(applied)
        if isinstance(results[1], DuplicateFeedbackError):  # the run was rated first, the step found nothing left
            assert results[0] == route_ids and set(by_score.values()) == {1.0}
        else:
            assert results == [route_ids[:9], route_ids[9:]]
            assert [by_score[r] for r in route_ids] == [1.0] * 9 + [0.0]
        assert len(applied) == len(route_ids)


def test_feedback_handler_ratings_given_at_once() -> None:
    """The user trial, end to end: an agent run of 40 LangChain model calls rated by several people at once."""
    pytest.importorskip("langchain_core")
    from langchain_core.runnables import RunnableLambda

    from langchain_bandit_router import ChatBanditRouter, FeedbackHandler

    for trial in range(5):
        router = make_router()
        applied = spy_feedback(router, jitter=0.001, seed=trial)
        llm = ChatBanditRouter(router=router, model_kwargs={"mock_response": "done"})
        handler = FeedbackHandler(router)
        run = uuid.uuid4()
        agent = RunnableLambda(lambda q: [llm.invoke(f"{q} step {i}") for i in range(STEPS)])
        agent.invoke("task", config={"callbacks": [handler], "run_id": run})
        route_ids = handler.runs.route_ids(run)
        assert len(route_ids) == STEPS
        scores = [i / (RATERS - 1) for i in range(RATERS)]
        results = rate_at_once(lambda score: handler.feedback(str(run), score), scores, stagger=0.02)
        assert_one_rating_won(results, scores, route_ids, applied)


def test_a_decision_rated_directly_while_its_run_is_rated_is_left_out() -> None:
    router = make_router()
    runs = RunRoutes(router)
    first, second, third = agent_run(router, runs, "run", steps=3)
    feedback = router.feedback

    def evaluator_overtakes(route_id: str, score: float, **kwargs: Any) -> None:
        if route_id == second:  # between the run's check and its rating of `third`, someone else rates `third`
            feedback(third, 0.3)
        feedback(route_id, score, **kwargs)

    router.feedback = evaluator_overtakes  # type: ignore[method-assign]
    assert runs.feedback("run", 1.0) == [first, second]
    with pytest.raises(DuplicateFeedbackError):
        runs.feedback("run", 1.0)

    runs.start("other")
    runs.record("other", only := router.route("alone").route_id)

    def all_overtaken(route_id: str, score: float, **kwargs: Any) -> None:
        if router.pending(only):
            feedback(only, 0.3)
        feedback(route_id, score, **kwargs)

    router.feedback = all_overtaken  # type: ignore[method-assign]
    with pytest.raises(DuplicateFeedbackError):  # nothing left to rate: the router's error, as in sequence
        runs.feedback("other", 1.0)


def test_another_router_error_stops_the_rating_and_keeps_what_it_applied() -> None:
    router = make_router(feedback=FeedbackSettings(source_limit=2))
    runs = RunRoutes(router)
    route_ids = agent_run(router, runs, "run", steps=3)
    with pytest.raises(FeedbackLimitError):
        runs.feedback("run", 1.0, source="user-1")
    assert [router.pending(r) for r in route_ids] == [False, False, True]
    assert runs.feedback("run", 1.0, source="user-2") == route_ids[2:]


# -- Evaluator.wait -----------------------------------------------------------------------------------------------
def slow_score(seconds: float) -> Callable[[str, str], float]:
    def score(prompt: str, answer: str) -> float:
        time.sleep(seconds)
        return 1.0

    return score


def test_evaluator_wait_timeout_is_for_the_whole_wait() -> None:
    router = make_router()
    evaluator = Evaluator(router, slow_score(0.4), max_workers=1)
    for i in range(3):
        evaluator.submit(router.route(f"q{i}").route_id, f"q{i}", "a")
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"^[123] of 3 evaluations still running after 0.5 s$") as caught:
        evaluator.wait(timeout=0.5)
    elapsed = time.monotonic() - start
    assert type(caught.value) is TimeoutError  # the builtin, whatever Python's concurrent.futures raises
    assert 0.45 <= elapsed < 0.9, elapsed  # per future it would be about 1.2 s (0.4 + 0.4 + 0.4)
    evaluator.wait(timeout=10)
    assert (evaluator.scored, evaluator.failed) == (3, 0)
    evaluator.close()


def test_evaluator_wait_without_timeout_or_work() -> None:
    router = make_router()
    evaluator = Evaluator(router, slow_score(0.05), max_workers=2)
    evaluator.wait(timeout=0)  # nothing queued: returns at once
    for i in range(4):
        evaluator.submit(router.route(f"q{i}").route_id, f"q{i}", "a")
    evaluator.wait()
    assert evaluator.scored == 4
    with pytest.raises(ValueError, match="timeout must be a finite number of seconds >= 0 or None"):
        evaluator.wait(timeout=-1)
    evaluator.close()


def test_the_evaluator_skips_an_answer_its_user_rated_first_without_a_judge_call() -> None:
    router = make_router()
    judged: list[str] = []
    evaluator = Evaluator(router, lambda prompt, answer: judged.append(prompt) or 0.5, max_workers=1)
    rated, left = router.route("rated by its user").route_id, router.route("left to the evaluator").route_id
    router.feedback(rated, 1.0)  # the user's rating comes before the evaluator's turn
    assert evaluator.submit(rated, "rated by its user", "a").result(timeout=10) is None
    assert evaluator.submit(left, "left to the evaluator", "a").result(timeout=10) == 0.5
    assert judged == ["left to the evaluator"]
    assert (evaluator.scored, evaluator.skipped, evaluator.failed) == (1, 1, 0)
    evaluator.close()

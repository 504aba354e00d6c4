"""The integration kit framework wrappers adapt: route metadata, per-run route collection, evaluator sampling,
checks of call arguments (`checks.check_call_kwargs`, re-exported), and feedback that does not name a route_id
(ratings given to a run, evaluators).

Framework-neutral: the LangChain and LlamaIndex integrations build on these.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Hashable, Iterator, Mapping

import numpy as np

from .checks import check_call_kwargs
from .decision import Decision
from .errors import BanditRouterError, ConfigError, DuplicateFeedbackError, UnknownRouteError
from .models import Model, quiet_litellm
from .router import Router, check_score

__all__ = ["EvaluationError", "Evaluator", "LLMJudge", "RouteRecorder", "RunRoutes", "Sampler", "check_call_kwargs",
           "route_metadata"]

log = logging.getLogger(__name__)

Score = Callable[[str, str], float]


class EvaluationError(BanditRouterError, ValueError):
    """An evaluator or judge could not grade an answer (e.g. its reply holds no grade); names the routes left
    unrated."""


def route_metadata(decision: Decision, cost: float | None = None, usage: Mapping[str, int] | None = None, *,
                   model_key: str = "model") -> dict[str, Any]:
    """What a response reports about its routing, the one source of both wrappers' metadata: route_id, the model
    used (under `model_key`, e.g. LangChain's "model_name"), cost_weight, propensity, failed (models that failed
    first), feedback_token (None unless the router signs feedback), task (None: none), and, once the call is done,
    its cost in USD and the token counts in `usage`."""
    info: dict[str, Any] = {"route_id": decision.route_id, model_key: decision.model,
                            "cost_weight": decision.cost_weight, "propensity": decision.propensity,
                            "failed": list(decision.failed), "feedback_token": decision.feedback_token,
                            "task": decision.task}
    if cost is not None:
        info["cost"] = cost
        info.update(usage or {})
    return info


class RouteRecorder:
    """Collects the route metadata of the calls made inside `with recorder.record() as routes:` blocks, for
    frameworks whose runs return only text (a query engine's answer). Per context: each thread and asyncio task
    sees its own blocks. A call is added when it is routed (`add`); the dict it added is completed in place when
    the call ends, so a stream consumed after the block still reports its cost."""

    def __init__(self) -> None:
        self._blocks: ContextVar[tuple[list[dict[str, Any]], ...]] = ContextVar("bandit_router_routes", default=())

    @contextmanager
    def record(self) -> Iterator[list[dict[str, Any]]]:
        routes: list[dict[str, Any]] = []
        token = self._blocks.set((*self._blocks.get(), routes))
        try:
            yield routes
        finally:
            self._blocks.reset(token)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Inside, no open block of this context records the calls made (an evaluator's judge grading them)."""
        token = self._blocks.set(())
        try:
            yield
        finally:
            self._blocks.reset(token)

    def add(self, info: dict[str, Any]) -> dict[str, Any]:
        """Add `info` to every open block of this context; returns it."""
        for routes in self._blocks.get():
            routes.append(info)
        return info


class Sampler:
    """Seeded choice of the share `sample_rate` in [0, 1] of answers an evaluator grades (thread-safe)."""

    def __init__(self, sample_rate: float = 1.0, seed: int | None = None) -> None:
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float)) or not 0 <= sample_rate <= 1:
            raise ConfigError(f"sample_rate must be a number in [0, 1], got {sample_rate!r}")
        self.sample_rate = float(sample_rate)
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        """Whether the next answer is graded."""
        with self._lock:
            return bool(self._rng.random() < self.sample_rate)


class RunRoutes:
    """Remembers which routing decisions each run made, so a rating given to a run reaches every routed call
    inside it (a chain, an agent run, a single model call) whose output it kept.

    Runs are any hashable ids (LangChain run UUIDs, LlamaIndex span ids). Tell it where each run starts
    (`start(run, parent)`), which decision each model call produced (`record(run, route_id, token)`) and which
    runs ended in an error (`failed(run)`); a decision is known to its run and to all its ancestors, except to
    ancestors that outlived a failed run between them (a fallback or a retry threw its output away). At most
    `max_runs` runs are remembered, oldest dropped.
    """

    def __init__(self, router: Router, max_runs: int = 100_000) -> None:
        if not (isinstance(max_runs, int) and max_runs >= 1):
            raise ConfigError(f"max_runs must be an integer >= 1, got {max_runs!r}")
        self.router = router
        self.max_runs = max_runs
        self._parents: OrderedDict[Hashable, Hashable | None] = OrderedDict()
        # run -> (route_id, token, the model call's run) of the calls made inside it
        self._routes: OrderedDict[Hashable, list[tuple[str, str | None, Hashable]]] = OrderedDict()
        self._failed: OrderedDict[Hashable, None] = OrderedDict()
        self._cached: OrderedDict[Hashable, None] = OrderedDict()  # runs with a model call answered from a cache
        self._lock = threading.Lock()  # guards the dicts above; never held while rating
        self._rating = threading.Lock()  # one run's rating at a time (ratings are few and quick beside calls)

    def start(self, run: Hashable, parent: Hashable | None = None) -> None:
        """Note that `run` started inside `parent` (None for a top-level run)."""
        with self._lock:
            self._note(self._parents, run, parent)

    def record(self, run: Hashable, route_id: str, token: str | None = None) -> None:
        """Note that the model call `run` was routed as `route_id` (with the decision's feedback_token, if any)."""
        with self._lock:
            for node in self._lineage(run):
                routes = self._routes.setdefault(node, [])
                if (route_id, token, run) not in routes:  # a stream reports its route on its first and last chunk
                    routes.append((route_id, token, run))
                self._routes.move_to_end(node)
            while len(self._routes) > self.max_runs:
                self._routes.popitem(last=False)

    def failed(self, run: Hashable) -> None:
        """Note that `run` ended in an error: a rating of `run`, or of an ancestor that failed with it, still
        reaches its calls; a rating of an ancestor that went on to an answer (a fallback, a retry) does not."""
        with self._lock:
            self._note(self._failed, run)

    def cached(self, run: Hashable) -> None:
        """Note that the model call `run` was answered from a cache (no model called): rating it, or a run
        around it with no routed call, says so."""
        with self._lock:
            for node in self._lineage(run):
                self._note(self._cached, node)

    def _note(self, runs: OrderedDict[Hashable, Any], run: Hashable, value: Any = None) -> None:
        """Set `runs[run]` to `value`, newest, the oldest dropped beyond max_runs. Callers hold `_lock`."""
        runs[run] = value
        runs.move_to_end(run)
        while len(runs) > self.max_runs:
            runs.popitem(last=False)

    def route_ids(self, run: Hashable) -> list[str]:
        """The route_ids of the routed calls made inside `run` whose output it kept, oldest first."""
        with self._lock:
            return [route_id for route_id, _ in self._kept(run)]

    def _lineage(self, run: Hashable) -> Iterator[Hashable]:
        """`run`, its parent, and so on up to its top-level run."""
        seen: set[Hashable] = set()
        node: Hashable | None = run
        while node is not None and node not in seen:
            seen.add(node)
            yield node
            node = self._parents.get(node)

    def _kept(self, run: Hashable) -> list[tuple[str, str | None]]:
        """(route_id, token) of the calls inside `run` with no failed run between them and `run`, unless `run`
        failed too. Callers hold `_lock`."""
        entries = self._routes.get(run, ())
        if run in self._failed:
            return [(route_id, token) for route_id, token, _ in entries]

        def kept(call: Hashable) -> bool:
            for node in self._lineage(call):
                if node == run:
                    return True
                if node in self._failed:
                    return False
            return True

        return [(route_id, token) for route_id, token, call in entries if kept(call)]

    def feedback(self, run: Hashable, score: float, source: str | None = None) -> list[str]:
        """Reward every decision of `run` still waiting for feedback with `score` in [0, 1] (`source` names who
        gave it, for routers that cap feedback per source); returns their route_ids.

        Raises UnknownRouteError when the run made no routed call (or was forgotten), and the router's error
        (DuplicateFeedbackError, UnknownRouteError) when none of its decisions still waits.

        Ratings given at once (two users, a retry, a run and a run inside it) apply one after the other: the
        first rates every decision still waiting and the next finds none (DuplicateFeedbackError) or only those
        the first did not hold, so a run's decisions never carry a mix of both scores. A decision that stops
        waiting while the run is rated (rated through the router directly, expired) is left out; if that leaves
        nothing rated, the router's error for it is raised. Any other error of the router (an invalid feedback
        token, a source over its limit) is raised at once: the decisions rated before it keep their reward and
        the rest keep waiting, so rating the run again rates only those.
        """
        score = check_score(score)
        # The router takes its own lock inside each call below, never across them, and never takes `_rating`:
        # no deadlock.
        with self._rating:
            with self._lock:
                decisions = self._kept(run)
            if not decisions:
                why = (": its replies came from a cache, which calls no model" if run in self._cached else
                       " that is still remembered (or only calls whose output a fallback or a retry threw away)")
                raise UnknownRouteError(f"run {run!r} made no routed call{why}")
            waiting = [(r, token) for r, token in decisions if self.router.pending(r)]
            rated: list[str] = []
            stopped: BanditRouterError | None = None
            for route_id, token in waiting or decisions[-1:]:  # with none waiting, the router raises its error
                try:
                    self.router.feedback(route_id, score, token=token, source=source)
                except (DuplicateFeedbackError, UnknownRouteError) as error:  # it stopped waiting since the check
                    stopped = error
                    continue
                rated.append(route_id)
        if not rated and stopped is not None:
            raise stopped
        return rated


class Evaluator:
    """Scores a sampled share of answers in the background and feeds each score back as the reward.

    Args:
        router: the router whose decisions are scored.
        score: any callable (prompt, answer) -> float in [0, 1], e.g. an `LLMJudge`.
        sample_rate: share of submitted answers that are scored, in [0, 1].
        seed: seed of the sampling.
        max_workers: threads scoring at once.
        source: the name its feedback is given under (for routers that cap feedback per source).

    A score that fails (an exception, a value outside [0, 1]) is logged and counted in `failed`; the call it
    scores is unaffected. An answer rated otherwise (e.g. by its user) before its turn, or expired, is not scored
    (no judge call is spent on it) and is counted in `skipped`: a route takes one rating.
    """

    def __init__(self, router: Router, score: Score, sample_rate: float = 1.0, seed: int | None = None,
                 max_workers: int = 1, source: str | None = "evaluator") -> None:
        self.sampled = Sampler(sample_rate, seed)
        if not (isinstance(max_workers, int) and max_workers >= 1):
            raise ConfigError(f"max_workers must be an integer >= 1, got {max_workers!r}")
        if not callable(score):
            raise ConfigError(f"score must be a callable (prompt, answer) -> [0, 1], got {type(score).__name__}")
        self.router = router
        self.score = score
        self.sample_rate = self.sampled.sample_rate
        self.source = source
        self.scored = 0
        self.failed = 0
        self.skipped = 0
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="bandit-router-evaluator")
        self._running: set[Future] = set()
        self._lock = threading.Lock()

    def submit(self, route_id: str, prompt: str, answer: str, token: str | None = None) -> Future | None:
        """Queue (prompt, answer) of decision `route_id` (and its feedback_token, if any) for scoring if it is
        sampled; returns the future of its score (None if it was rated otherwise first), else None."""
        if not self.sampled():
            return None
        with self._lock:
            future = self._pool.submit(self._run, route_id, prompt, answer, token)
            self._running.add(future)
        future.add_done_callback(self._done)
        return future

    def _run(self, route_id: str, prompt: str, answer: str, token: str | None) -> float | None:
        if not self.router.pending(route_id):  # rated otherwise since it was queued, or expired
            with self._lock:
                self.skipped += 1
            return None
        try:
            try:
                score = check_score(self.score(prompt, answer))
            except Exception as error:
                raise EvaluationError(f"route {route_id} left unrated: the score failed: {error}") from error
            self.router.feedback(route_id, score, token=token, source=self.source)
        except Exception:
            log.warning("evaluator could not score route %s", route_id, exc_info=True)
            with self._lock:
                self.failed += 1
            raise
        with self._lock:
            self.scored += 1
        return score

    def _done(self, future: Future) -> None:
        with self._lock:
            self._running.discard(future)

    def wait(self, timeout: float | None = None) -> None:
        """Block until every answer queued so far is scored, or raise TimeoutError (naming how many are still being
        scored) once `timeout` seconds in all have passed (None: no limit)."""
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or not 0 <= timeout < float("inf")):
            raise ConfigError(f"timeout must be a finite number of seconds >= 0 or None, got {timeout!r}")
        with self._lock:
            running = list(self._running)
        _, left = wait_for(running, timeout)  # one deadline for them all
        if left:
            raise TimeoutError(f"{len(left)} of {len(running)} evaluations still running after {timeout:g} s")

    def close(self) -> None:
        """Finish queued scoring and stop the worker threads."""
        self._pool.shutdown(wait=True)


JUDGE_INSTRUCTIONS = (
    "You grade answers. Given a question and an answer (and, when there is one, a reference answer known to be "
    "right), rate how correct, complete and helpful the answer is on a scale from 0 (useless or wrong) to 10 "
    "(perfect). Reply with the number only.")
# A reply's first line that is a grade and nothing else: "7", "7.5", "7/10", "Grade: 7 out of 10." (a number found
# anywhere else in a reply, e.g. one quoted from the question, is not taken for the grade)
_GRADE = re.compile(r"\s*(?:(?:grade|score)\s*[:=]?\s*)?(\d+(?:\.\d+)?)\s*(?:/\s*10|out of 10)?\s*\.?\s*",
                    re.IGNORECASE)


class LLMJudge:
    """An LLM-as-judge called through LiteLLM: asks `model` for a 0-10 grade and returns grade / 10.

    `model` is a Model card (its api_base and api_key are used) or a LiteLLM model name; `references` maps a
    prompt to its reference answer, shown to the judge with that prompt's answers; `litellm_kwargs` pass through
    to litellm.completion (e.g. temperature=0, timeout=30).
    """

    def __init__(self, model: Model | str, instructions: str = JUDGE_INSTRUCTIONS,
                 references: Mapping[str, str] | None = None, **litellm_kwargs: Any) -> None:
        self.call_kwargs = model.call_kwargs() if isinstance(model, Model) else {"model": model}
        self.instructions = instructions
        self.references = dict(references or {})
        self.litellm_kwargs = litellm_kwargs

    def __call__(self, prompt: str, answer: str) -> float:
        litellm = quiet_litellm()
        reference = self.references.get(prompt)
        known = "" if reference is None else f"Reference answer:\n{reference}\n\n"
        messages = [{"role": "system", "content": self.instructions},
                    {"role": "user",
                     "content": f"Question:\n{prompt}\n\n{known}Answer:\n{answer}\n\nGrade (0-10):"}]
        response = litellm.completion(messages=messages, **self.call_kwargs, **self.litellm_kwargs)
        reply = response.choices[0].message.content or ""
        match = _GRADE.fullmatch(reply.strip().split("\n", 1)[0])
        if match is None or not 0 <= float(match.group(1)) <= 10:
            raise EvaluationError(f"the judge's reply does not start with a line that is a grade in [0, 10]: "
                                  f"{reply[:200]!r}")
        return float(match.group(1)) / 10

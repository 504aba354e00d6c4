"""Feedback that does not name a route_id: ratings given to a framework's run, and background evaluators.

Framework-neutral: the LangChain and LlamaIndex integrations feed these from their callbacks.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Hashable

import numpy as np

from .errors import ConfigError, UnknownRouteError
from .models import Model
from .router import Router, check_score

__all__ = ["Evaluator", "LLMJudge", "RunRoutes"]

log = logging.getLogger(__name__)

Score = Callable[[str, str], float]


class RunRoutes:
    """Remembers which routing decisions each run made, so a rating given to a run reaches every routed call
    inside it (a chain, an agent run, a single model call).

    Runs are any hashable ids (LangChain run UUIDs, LlamaIndex span ids). Tell it where each run starts
    (`start(run, parent)`) and which decision each model call produced (`record(run, route_id, token)`); the
    decision is then known to that run and to all its ancestors. At most `max_runs` runs are remembered, oldest
    dropped.
    """

    def __init__(self, router: Router, max_runs: int = 100_000) -> None:
        if not (isinstance(max_runs, int) and max_runs >= 1):
            raise ConfigError(f"max_runs must be an integer >= 1, got {max_runs!r}")
        self.router = router
        self.max_runs = max_runs
        self._parents: OrderedDict[Hashable, Hashable | None] = OrderedDict()
        self._routes: OrderedDict[Hashable, list[tuple[str, str | None]]] = OrderedDict()  # (route_id, token)
        self._lock = threading.Lock()

    def start(self, run: Hashable, parent: Hashable | None = None) -> None:
        """Note that `run` started inside `parent` (None for a top-level run)."""
        with self._lock:
            self._parents[run] = parent
            self._parents.move_to_end(run)
            while len(self._parents) > self.max_runs:
                self._parents.popitem(last=False)

    def record(self, run: Hashable, route_id: str, token: str | None = None) -> None:
        """Note that the model call `run` was routed as `route_id` (with the decision's feedback_token, if any)."""
        with self._lock:
            seen: set[Hashable] = set()
            node: Hashable | None = run
            while node is not None and node not in seen:  # the run and its ancestors
                seen.add(node)
                self._routes.setdefault(node, []).append((route_id, token))
                self._routes.move_to_end(node)
                node = self._parents.get(node)
            while len(self._routes) > self.max_runs:
                self._routes.popitem(last=False)

    def route_ids(self, run: Hashable) -> list[str]:
        """The route_ids of every routed call made inside `run`, oldest first."""
        with self._lock:
            return [route_id for route_id, _ in self._routes.get(run, ())]

    def feedback(self, run: Hashable, score: float, source: str | None = None) -> list[str]:
        """Reward every decision of `run` still waiting for feedback with `score` in [0, 1] (`source` names who
        gave it, for routers that cap feedback per source); returns their route_ids.

        Raises UnknownRouteError when the run made no routed call (or was forgotten), and the router's error
        (DuplicateFeedbackError, UnknownRouteError) when none of its decisions still waits."""
        score = check_score(score)
        with self._lock:
            decisions = list(self._routes.get(run, ()))
        if not decisions:
            raise UnknownRouteError(f"run {run!r} made no routed call that is still remembered")
        waiting = [(r, token) for r, token in decisions if self.router.pending(r)]
        for route_id, token in waiting or decisions[-1:]:  # with none waiting, the router raises its precise error
            self.router.feedback(route_id, score, token=token, source=source)
        return [route_id for route_id, _ in waiting]


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
    scores is unaffected.
    """

    def __init__(self, router: Router, score: Score, sample_rate: float = 1.0, seed: int | None = None,
                 max_workers: int = 1, source: str | None = "evaluator") -> None:
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float)) or not 0 <= sample_rate <= 1:
            raise ConfigError(f"sample_rate must be a number in [0, 1], got {sample_rate!r}")
        if not (isinstance(max_workers, int) and max_workers >= 1):
            raise ConfigError(f"max_workers must be an integer >= 1, got {max_workers!r}")
        if not callable(score):
            raise ConfigError(f"score must be a callable (prompt, answer) -> [0, 1], got {type(score).__name__}")
        self.router = router
        self.score = score
        self.sample_rate = float(sample_rate)
        self.source = source
        self.scored = 0
        self.failed = 0
        self._rng = np.random.default_rng(seed)
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="bandit-router-evaluator")
        self._running: set[Future] = set()
        self._lock = threading.Lock()

    def submit(self, route_id: str, prompt: str, answer: str, token: str | None = None) -> Future | None:
        """Queue (prompt, answer) of decision `route_id` (and its feedback_token, if any) for scoring if it is
        sampled; returns the future of its score, else None."""
        with self._lock:
            if self._rng.random() >= self.sample_rate:
                return None
            future = self._pool.submit(self._run, route_id, prompt, answer, token)
            self._running.add(future)
        future.add_done_callback(self._done)
        return future

    def _run(self, route_id: str, prompt: str, answer: str, token: str | None) -> float:
        try:
            score = check_score(self.score(prompt, answer))
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
        """Block until every queued answer is scored (or `timeout` seconds pass)."""
        with self._lock:
            running = list(self._running)
        for future in running:
            future.exception(timeout)

    def close(self) -> None:
        """Finish queued scoring and stop the worker threads."""
        self._pool.shutdown(wait=True)


JUDGE_INSTRUCTIONS = (
    "You grade answers. Given a question and an answer, rate how correct, complete and helpful the answer is "
    "on a scale from 0 (useless or wrong) to 10 (perfect). Reply with the number only.")
_GRADE = re.compile(r"\d+(?:\.\d+)?")


class LLMJudge:
    """An LLM-as-judge called through LiteLLM: asks `model` for a 0-10 grade and returns grade / 10.

    `model` is a Model card (its api_base and api_key are used) or a LiteLLM model name; `litellm_kwargs`
    pass through to litellm.completion (e.g. temperature=0, timeout=30).
    """

    def __init__(self, model: Model | str, instructions: str = JUDGE_INSTRUCTIONS, **litellm_kwargs: Any) -> None:
        self.call_kwargs = model.call_kwargs() if isinstance(model, Model) else {"model": model}
        self.instructions = instructions
        self.litellm_kwargs = litellm_kwargs

    def __call__(self, prompt: str, answer: str) -> float:
        import litellm

        messages = [{"role": "system", "content": self.instructions},
                    {"role": "user", "content": f"Question:\n{prompt}\n\nAnswer:\n{answer}\n\nGrade (0-10):"}]
        response = litellm.completion(messages=messages, **self.call_kwargs, **self.litellm_kwargs)
        reply = response.choices[0].message.content or ""
        match = _GRADE.search(reply)
        if match is None or not 0 <= float(match.group()) <= 10:
            raise ValueError(f"the judge's reply holds no grade in [0, 10]: {reply[:200]!r}")
        return float(match.group()) / 10

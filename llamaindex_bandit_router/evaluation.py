"""Rewards from LlamaIndex evaluators: score a sampled share of answers and feed the score back to the router."""

from __future__ import annotations

from typing import Any, Mapping, Sequence, Union

import numpy as np
from llama_index.core.base.response.schema import AsyncStreamingResponse, Response, StreamingResponse
from llama_index.core.evaluation import BaseEvaluator, CorrectnessEvaluator, EvaluationResult

from bandit_router import ConfigError
from bandit_router.feedback import EvaluationError, Sampler

from .llm import BanditRouterLLM

__all__ = ["EvaluatorFeedback", "evaluation_score"]

Answer = Union[Response, StreamingResponse, AsyncStreamingResponse, str]

CORRECTNESS_RANGE = (1.0, 5.0)  # CorrectnessEvaluator grades 1 (worst) to 5 (best)


def evaluation_score(result: EvaluationResult, score_range: tuple[float, float] = (0.0, 1.0)) -> float | None:
    """An evaluation as a reward in [0, 1]: its score rescaled from `score_range` (clipped), or its pass/fail
    verdict as 1/0 when it has no score; None for an invalid evaluation or one with neither."""
    if result.invalid_result:
        return None
    if result.score is None:
        return None if result.passing is None else float(result.passing)
    low, high = score_range
    return float(np.clip((result.score - low) / (high - low), 0.0, 1.0))


class EvaluatorFeedback:
    """Runs a LlamaIndex evaluator on a sampled share of answers and rewards the routes that produced them.

    Args:
        llm: the BanditRouterLLM whose routes are rewarded.
        evaluator: any LlamaIndex evaluator, e.g. CorrectnessEvaluator or FaithfulnessEvaluator. Its judge's calls
            are not recorded with the answer's (`llm.unrecorded()`), so the grade reaches only the answer; a judge
            routed by the same router (LlamaIndex's default, `Settings.llm`) leaves decisions nobody rates: give
            it a judge LLM of its own.
        sample_rate: share of answers evaluated, in [0, 1].
        score_range: the evaluator's score scale, mapped onto [0, 1]; defaults to (1, 5) for
            CorrectnessEvaluator and (0, 1) otherwise (faithfulness, relevancy: passing -> 1, failing -> 0).
        seed: seed of the sampling.

    Pass the routes of an answer (from `llm.record_routes()`, or `[response.additional_kwargs]` for one chat
    call); every call that went into the answer gets the same reward. A streaming response is read to its end
    first; LlamaIndex's streaming synthesizers call the LLM only then, so evaluate it inside the
    `record_routes()` block that made it. In async code, run `aevaluate` as a task to keep evaluation off the
    request path. An evaluator that fails, or whose result has neither a score nor a verdict (e.g. a judge reply
    it cannot parse), raises EvaluationError naming the routes left unrated.
    """

    def __init__(self, llm: BanditRouterLLM, evaluator: BaseEvaluator, sample_rate: float = 1.0,
                 score_range: tuple[float, float] | None = None, seed: int | None = None) -> None:
        self.sampled = Sampler(sample_rate, seed)
        if score_range is None:
            score_range = CORRECTNESS_RANGE if isinstance(evaluator, CorrectnessEvaluator) else (0.0, 1.0)
        if len(score_range) != 2 or not score_range[0] < score_range[1]:
            raise ConfigError(f"score_range must be (low, high) with low < high, got {score_range!r}")
        self.llm = llm
        self.evaluator = evaluator
        self.sample_rate = self.sampled.sample_rate
        self.score_range = (float(score_range[0]), float(score_range[1]))

    def _sampled(self, routes: Sequence[Mapping[str, Any]]) -> bool:
        if not routes:  # e.g. a streaming response read after its record_routes() block
            raise ConfigError("routes is empty: no routed call to rate. Pass the routes of the calls that made the "
                              "answer (llm.record_routes(), with a streaming response read inside the block)")
        return self.sampled()

    def _failed(self, routes: Sequence[Mapping[str, Any]], error: Exception) -> EvaluationError:
        ids = [route["route_id"] for route in routes]
        return EvaluationError(f"{type(self.evaluator).__name__} could not grade the answer of route(s) {ids}, "
                               f"left unrated: {type(error).__name__}: {error}")

    def _reward(self, routes: Sequence[Mapping[str, Any]], result: EvaluationResult) -> float:
        score = evaluation_score(result, self.score_range)
        if score is None:  # e.g. a judge reply whose grade the evaluator could not read
            why = (f"is invalid: {result.invalid_reason}" if result.invalid_result
                   else f"has neither a score nor a verdict (feedback: {str(result.feedback)[:200]!r})")
            raise self._failed(routes, ValueError(f"the evaluation {why}"))
        for route in routes:
            token = route.get("feedback_token")
            self.llm.feedback(route["route_id"], score, **({} if token is None else {"token": token}))
        return score

    def evaluate(self, routes: Sequence[Mapping[str, Any]], query: str, response: Answer,
                 **kwargs: Any) -> float | None:
        """Evaluate `response` to `query` if sampled and reward `routes`; returns the reward given, or None if
        not sampled (EvaluationError if the evaluator fails or grades without a score or a verdict; ConfigError if
        `routes` is empty).

        `response` is a query engine's Response or StreamingResponse (its source nodes become the contexts) or
        the answer text; kwargs go to the evaluator (e.g. `reference=` for correctness, `contexts=` for a text
        answer).
        """
        if isinstance(response, AsyncStreamingResponse):
            raise ConfigError("an AsyncStreamingResponse needs `await aevaluate(...)`")
        if isinstance(response, StreamingResponse):  # read first: LlamaIndex calls the LLM as the stream is read
            response = response.get_response()
        routes = list(routes)  # as the answer was made: not the judge's calls
        if not self._sampled(routes):
            return None
        try:
            with self.llm.unrecorded():
                if isinstance(response, str):
                    result = self.evaluator.evaluate(query=query, response=response, **kwargs)
                else:
                    result = self.evaluator.evaluate_response(query=query, response=response, **kwargs)
        except Exception as error:
            raise self._failed(routes, error) from error
        return self._reward(routes, result)

    async def aevaluate(self, routes: Sequence[Mapping[str, Any]], query: str, response: Answer,
                        **kwargs: Any) -> float | None:
        """Async `evaluate`."""
        if isinstance(response, StreamingResponse):
            response = response.get_response()
        elif isinstance(response, AsyncStreamingResponse):
            response = await response.get_response()
        routes = list(routes)
        if not self._sampled(routes):
            return None
        try:
            with self.llm.unrecorded():
                if isinstance(response, str):
                    result = await self.evaluator.aevaluate(query=query, response=response, **kwargs)
                else:
                    result = await self.evaluator.aevaluate_response(query=query, response=response, **kwargs)
        except Exception as error:
            raise self._failed(routes, error) from error
        return self._reward(routes, result)

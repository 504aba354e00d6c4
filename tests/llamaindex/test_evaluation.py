"""Rewards from LlamaIndex evaluators: score mapping, sampling, and the evaluated routes getting the reward."""

from __future__ import annotations

from typing import Any, Callable

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.evaluation import CorrectnessEvaluator, EvaluationResult, FaithfulnessEvaluator

from bandit_router import ConfigError, FeedbackSettings, Model, Router
from bandit_router.encoders import as_encoder
from bandit_router.feedback import EvaluationError
from bandit_router.testing import FakeLLMServer, last_user_text
from llamaindex_bandit_router import BanditRouterLLM, EncoderEmbedding, EvaluatorFeedback, evaluation_score

from .conftest import bag_of_words


def judge(server: FakeLLMServer, respond: Callable[[list[dict[str, Any]]], str]) -> BanditRouterLLM:
    """A judge LLM of its own: a one-model router over the server's 'judge' model answering with `respond`."""
    server.set_behavior("judge", respond=respond)
    card = Model("openai/judge", input_cost_per_token=0.0, output_cost_per_token=0.0, api_base=server.base_url,
                 api_key="sk-test")
    return BanditRouterLLM(Router([card], encoder=bag_of_words), call_kwargs={"num_retries": 0})


def scores(llm: BanditRouterLLM) -> dict[str, float]:
    return {row["route_id"]: row["score"] for row in llm.router.log.rows() if row["score"] is not None}


@pytest.mark.parametrize("result, score_range, expected", [
    (EvaluationResult(score=5.0, passing=True), (1, 5), 1.0),
    (EvaluationResult(score=1.0, passing=False), (1, 5), 0.0),
    (EvaluationResult(score=4.0, passing=True), (1, 5), 0.75),
    (EvaluationResult(score=9.0), (1, 5), 1.0),  # clipped
    (EvaluationResult(score=1.0, passing=True), (0, 1), 1.0),
    (EvaluationResult(passing=True), (0, 1), 1.0),
    (EvaluationResult(passing=False), (0, 1), 0.0),
    (EvaluationResult(), (0, 1), None),
    (EvaluationResult(score=5.0, invalid_result=True, invalid_reason="parse error"), (1, 5), None),
])
def test_evaluation_score(result: EvaluationResult, score_range: tuple[float, float], expected: float | None) -> None:
    assert evaluation_score(result, score_range) == expected


def test_correctness_score_is_mapped_from_1_5_and_fed_back(llm: BanditRouterLLM, server: FakeLLMServer) -> None:
    grader = judge(server, lambda messages: "4.0\nRight, but wordy.")
    feedback = EvaluatorFeedback(llm, CorrectnessEvaluator(llm=grader))
    response = llm.complete("capital of France?")
    reward = feedback.evaluate([response.additional_kwargs], "capital of France?", response.text, reference="Paris")
    assert reward == 0.75
    assert scores(llm) == {response.additional_kwargs["route_id"]: 0.75}
    judged = server.requests[-1]
    assert judged.model == "judge" and "Paris" in last_user_text(judged.messages)
    assert "Echo: capital of France?" in last_user_text(judged.messages)


@pytest.mark.parametrize("verdict, reward", [("YES", 1.0), ("NO", 0.0)])
async def test_faithfulness_of_a_query_engine_answer_rewards_all_its_calls(
        llm: BanditRouterLLM, server: FakeLLMServer, verdict: str, reward: float) -> None:
    documents = [Document(text="The Loire is the longest river in France."),
                 Document(text="The Seine flows through Paris.")]
    index = VectorStoreIndex.from_documents(documents, embed_model=EncoderEmbedding(as_encoder(bag_of_words)))
    engine = index.as_query_engine(llm=llm, similarity_top_k=2, response_mode="refine")
    with llm.record_routes() as routes:
        answer = await engine.aquery("Which river flows through Paris?")
    assert len(routes) == 2  # refine: one call per retrieved chunk
    grader = judge(server, lambda messages: verdict)
    feedback = EvaluatorFeedback(llm, FaithfulnessEvaluator(llm=grader))
    assert await feedback.aevaluate(routes, "Which river flows through Paris?", answer) == reward
    assert scores(llm) == {r["route_id"]: reward for r in routes}
    assert "The Seine flows through Paris." in server.requests[-1].messages[-1]["content"]  # the contexts were judged


def test_a_sampled_share_of_answers_is_evaluated(llm: BanditRouterLLM, server: FakeLLMServer) -> None:
    grader = judge(server, lambda messages: "5.0\nPerfect.")
    feedback = EvaluatorFeedback(llm, CorrectnessEvaluator(llm=grader), sample_rate=0.3, seed=0)
    rewards = []
    for i in range(40):
        response = llm.complete(f"question {i}")
        rewards.append(feedback.evaluate([response.additional_kwargs], f"question {i}", response.text))
    evaluated = [r for r in rewards if r is not None]
    assert 6 <= len(evaluated) <= 18 and set(evaluated) == {1.0}
    assert len(scores(llm)) == len(evaluated)
    assert sum(r.model == "judge" for r in server.requests) == len(evaluated)  # the judge ran only when sampled


def test_nothing_is_evaluated_without_routes_or_at_rate_zero(llm: BanditRouterLLM, server: FakeLLMServer) -> None:
    grader = judge(server, lambda messages: "5.0\nPerfect.")
    response = llm.complete("hello")
    with pytest.raises(ConfigError, match="routes is empty: no routed call to rate"):  # e.g. a stream read too late
        EvaluatorFeedback(llm, CorrectnessEvaluator(llm=grader)).evaluate([], "hello", response.text)
    never = EvaluatorFeedback(llm, CorrectnessEvaluator(llm=grader), sample_rate=0.0)
    assert never.evaluate([response.additional_kwargs], "hello", response.text) is None
    assert not any(r.model == "judge" for r in server.requests)


def test_a_grade_without_a_score_is_an_error_and_rewards_nothing(llm: BanditRouterLLM, server: FakeLLMServer) -> None:
    grader = judge(server, lambda messages: "unsure\nI cannot grade this.")
    response = llm.complete("hello")
    feedback = EvaluatorFeedback(llm, CorrectnessEvaluator(llm=grader))
    route_id = response.additional_kwargs["route_id"]
    with pytest.raises(EvaluationError, match=rf"CorrectnessEvaluator could not grade .*{route_id}.* left unrated: "
                                               r"ValueError: the evaluation has neither a score nor a verdict"):
        feedback.evaluate([response.additional_kwargs], "hello", response.text)
    assert llm.router.pending(route_id)


def test_an_evaluator_error_reaches_the_caller_and_rewards_nothing(llm: BanditRouterLLM,
                                                                    server: FakeLLMServer) -> None:
    grader = judge(server, lambda messages: "no line break, so the default parser fails")
    response = llm.complete("hello")
    feedback = EvaluatorFeedback(llm, CorrectnessEvaluator(llm=grader))
    with pytest.raises(ValueError):
        feedback.evaluate([response.additional_kwargs], "hello", response.text)
    assert llm.router.pending(response.additional_kwargs["route_id"])


@pytest.mark.parametrize("kwargs, match", [
    ({"sample_rate": 1.5}, r"sample_rate must be a number in \[0, 1\]"),
    ({"sample_rate": True}, r"sample_rate must be a number in \[0, 1\]"),
    ({"score_range": (5.0, 1.0)}, r"score_range must be \(low, high\) with low < high"),
])
def test_invalid_settings_raise_config_error(llm: BanditRouterLLM, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        EvaluatorFeedback(llm, FaithfulnessEvaluator(llm=llm), **kwargs)


def test_signed_feedback_carries_the_routes_token(server: FakeLLMServer) -> None:
    from .conftest import cards

    llm = BanditRouterLLM(Router(cards(server), encoder=bag_of_words, feedback=FeedbackSettings(feedback_secret="s" * 32)),
                          call_kwargs={"num_retries": 0})
    first, second = (llm.complete(f"hello {i}").additional_kwargs for i in range(2))
    assert first["feedback_token"] and first["feedback_token"] != second["feedback_token"]
    llm.feedback(first["route_id"], 1.0, token=first["feedback_token"])
    grader = judge(server, lambda messages: "5.0\nPerfect.")
    assert EvaluatorFeedback(llm, CorrectnessEvaluator(llm=grader)).evaluate([second], "hello 1", "Echo") == 1.0
    assert not llm.router.pending(first["route_id"]) and not llm.router.pending(second["route_id"])


async def test_a_judge_routed_by_the_same_llm_is_not_graded_with_the_answer(llm: BanditRouterLLM,
                                                                           server: FakeLLMServer) -> None:
    """LlamaIndex's evaluators judge with Settings.llm by default: the judge's own call, made inside the answer's
    record_routes() block (sync, or as a task), is not rewarded with the answer's grade."""
    for model in ("cheap", "big"):
        server.set_behavior(model, respond=lambda messages: "YES")
    feedback = EvaluatorFeedback(llm, FaithfulnessEvaluator(llm=llm.with_options(cost_weight=1.0)))
    with llm.record_routes() as routes:
        answer = llm.complete("Which river flows through Paris?")
        assert feedback.evaluate(routes, "Which river flows through Paris?", answer.text, contexts=["Seine"]) == 1.0
        assert len(routes) == 1
        again = await llm.acomplete("Which river flows through Lyon?")
        assert await feedback.aevaluate(routes[1:], "Which river?", again.text, contexts=["Rhone"]) == 1.0
    assert len(routes) == 2 and set(scores(llm)) == {r["route_id"] for r in routes}

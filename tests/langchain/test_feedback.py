"""Feedback by LangChain run id (FeedbackHandler over bandit_router.feedback.RunRoutes) and the background
evaluator hook (any callable, and an LLM-as-judge through LiteLLM)."""

from __future__ import annotations

import json
import uuid
from typing import Annotated

import pytest
from langchain.agents import create_agent
from langchain_core.exceptions import OutputParserException
from langchain_core.messages import ToolMessage
from langchain_core.output_parsers import JsonOutputParser, StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import InjectedToolCallId, tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command
from pydantic import BaseModel

from bandit_router import ConfigError, DuplicateFeedbackError, FeedbackSettings, Model, Router, UnknownRouteError
from bandit_router.errors import InvalidFeedbackTokenError
from bandit_router.feedback import Evaluator, LLMJudge, RunRoutes
from bandit_router.testing import FakeLLMServer
from langchain_bandit_router import ChatBanditRouter, FeedbackHandler

from .conftest import LARGE, SMALL, cards, hashed_bow


def quality(router: Router, prompt: str, model: str) -> float:
    return router.route(prompt, models=[model]).predicted_quality[model]


def test_rating_a_chain_run_rewards_its_model_call(llm: ChatBanditRouter, router: Router) -> None:
    handler = FeedbackHandler(router)
    chain = ChatPromptTemplate.from_template("Tell me about {topic}") | llm | StrOutputParser()
    run_id = uuid.uuid4()
    assert chain.invoke({"topic": "owls"}, config={"callbacks": [handler], "run_id": run_id}) == \
        "Echo: Tell me about owls"
    [route_id] = handler.runs.route_ids(run_id)
    assert router.pending(route_id)
    assert handler.feedback(str(run_id), 1.0) == [route_id]  # as a run id comes back over HTTP
    assert not router.pending(route_id)
    with pytest.raises(DuplicateFeedbackError):
        handler.feedback(run_id, 1.0)
    with pytest.raises(UnknownRouteError, match="no routed call"):
        handler.feedback(uuid.uuid4(), 1.0)
    with pytest.raises(ConfigError, match="run_id must be a UUID or its string form, got 'run-7'"):
        handler.feedback("run-7", 1.0)


def test_feedback_moves_the_policy(llm: ChatBanditRouter, router: Router) -> None:
    handler = FeedbackHandler(router)
    run_id = uuid.uuid4()
    reply = llm.invoke("rate me", config={"callbacks": [handler], "run_id": run_id})
    model = reply.response_metadata["model_name"]
    before = quality(router, "rate me", model)
    handler.feedback(run_id, 1.0)
    assert quality(router, "rate me", model) > before + 0.1


def test_rating_an_agent_run_reaches_every_step(llm: ChatBanditRouter, router: Router) -> None:
    def two_steps(question: str) -> str:
        first = llm.invoke(question)
        return llm.invoke(f"{question} {first.content}").content

    handler = FeedbackHandler(router)
    run_id = uuid.uuid4()
    RunnableLambda(two_steps).invoke("plan", config={"callbacks": [handler], "run_id": run_id})
    route_ids = handler.runs.route_ids(run_id)
    assert len(route_ids) == 2
    assert handler.feedback(run_id, 0.5) == route_ids
    assert not any(router.pending(r) for r in route_ids)


async def test_run_ids_in_async_streams(llm: ChatBanditRouter, router: Router) -> None:
    handler = FeedbackHandler(router)
    run_id = uuid.uuid4()
    chain = ChatPromptTemplate.from_template("{q}") | llm
    chunks = [c async for c in chain.astream({"q": "hi"}, config={"callbacks": [handler], "run_id": run_id})]
    assert handler.feedback(run_id, 1.0) == [chunks[0].response_metadata["route_id"]]


def test_rating_one_step_then_the_run_rewards_the_rest(llm: ChatBanditRouter, router: Router) -> None:
    handler = FeedbackHandler(router)
    run_id = uuid.uuid4()
    RunnableLambda(lambda q: [llm.invoke(q), llm.invoke(q)]).invoke("x", config={"callbacks": [handler],
                                                                              "run_id": run_id})
    first, second = handler.runs.route_ids(run_id)
    router.feedback(first, 0.0)
    assert handler.feedback(run_id, 1.0) == [second]


def test_run_routes_forget_the_oldest_runs(router: Router) -> None:
    runs = RunRoutes(router, max_runs=2)
    for run in ("a", "b", "c"):
        runs.start(run)
        runs.record(run, router.route("hi").route_id)
    assert runs.route_ids("a") == [] and len(runs.route_ids("c")) == 1
    with pytest.raises(ConfigError, match="max_runs"):
        RunRoutes(router, max_runs=0)


def test_rating_a_run_leaves_out_a_call_whose_output_a_fallback_threw_away(router: Router,
                                                                          server: FakeLLMServer) -> None:
    """The small model's reply fails to parse and the large one's answers: the user's rating of the run is for the
    large model's answer, not the discarded one; rating the failed attempt's own run still reaches its call."""
    server.set_behavior("small", respond=lambda messages: "sorry, no JSON here")
    server.set_behavior("large", respond=lambda messages: '{"answer": 42}')
    cheap = ChatBanditRouter(router, models=[SMALL]) | JsonOutputParser()
    strong = ChatBanditRouter(router, models=[LARGE]) | JsonOutputParser()
    chain = ChatPromptTemplate.from_template("{q}") | cheap.with_fallbacks([strong])
    handler, run_id = FeedbackHandler(router), uuid.uuid4()
    assert chain.invoke({"q": "answer in JSON"}, config={"callbacks": [handler], "run_id": run_id}) == {"answer": 42}
    [kept] = handler.runs.route_ids(run_id)
    assert handler.feedback(run_id, 1.0) == [kept]
    [attempt] = [run for run in handler.runs._failed if handler.runs.route_ids(run)]  # the small model's step
    [discarded] = handler.runs.route_ids(attempt)
    assert discarded != kept and router.pending(discarded) and handler.feedback(attempt, 0.0) == [discarded]
    failing = cheap.with_retry(stop_after_attempt=2)  # a run that failed as a whole: its rating reaches every call
    with pytest.raises(OutputParserException):
        failing.invoke("answer in JSON", config={"callbacks": [handler], "run_id": (whole := uuid.uuid4())})
    assert len(handler.feedback(whole, 0.0)) == 2


def test_a_handoff_between_agents_is_not_a_failure(router: Router) -> None:
    """LangGraph hands a run to another agent by raising ParentCommand (control flow, seen by on_chain_error): the
    handing agent's step was kept, so the run's rating reaches it as well as the next agent's."""
    @tool
    def transfer_to_writer(reason: str, tool_call_id: Annotated[str, InjectedToolCallId]) -> Command:
        """Hand the conversation to the writer."""
        return Command(graph=Command.PARENT, goto="writer",
                       update={"messages": [ToolMessage("transferred", tool_call_id=tool_call_id)]})

    llm = ChatBanditRouter(router)
    graph = StateGraph(MessagesState)
    graph.add_node("researcher", create_agent(llm, [transfer_to_writer], name="researcher"), destinations=("writer",))
    graph.add_node("writer", lambda state: {"messages": [llm.invoke(state["messages"])]})
    graph.add_edge(START, "researcher")
    graph.add_edge("writer", END)
    handler, run_id = FeedbackHandler(router), uuid.uuid4()
    graph.compile().invoke({"messages": [("user", "write about owls")]}, config={"callbacks": [handler],
                                                                                "run_id": run_id})
    made = {route for routes in handler.runs._routes.values() for route, _, _ in routes}
    assert len(made) == 2 and set(handler.feedback(run_id, 1.0)) == made  # the handing step too


def test_evaluator_scores_in_the_background(router: Router) -> None:
    seen: list[tuple[str, str]] = []

    def score(prompt: str, answer: str) -> float:
        seen.append((prompt, answer))
        return 1.0 if answer.endswith(prompt) else 0.0

    evaluator = Evaluator(router, score, seed=0)
    llm = ChatBanditRouter(router=router, evaluator=evaluator)
    replies = [llm.invoke("first"), list(llm.stream("second"))[0]]
    evaluator.wait(timeout=10)
    assert sorted(seen) == [("first", "Echo: first"), ("second", "Echo: second")]
    assert (evaluator.scored, evaluator.failed) == (2, 0)
    assert not any(router.pending(r.response_metadata["route_id"]) for r in replies)
    evaluator.close()


def test_evaluator_grades_a_tool_call_reply_by_its_calls(router: Router) -> None:
    """Structured output by function calling (the default) and an agent's tool steps reply with no text: the
    evaluator grades the calls, as JSON; they used to go ungraded and unrated."""
    seen: list[str] = []
    evaluator = Evaluator(router, lambda prompt, answer: seen.append(answer) or 1.0, seed=0)

    class Person(BaseModel):
        name: str

    llm = ChatBanditRouter(router=router, evaluator=evaluator)
    llm.with_structured_output(Person).invoke("name someone")
    replies = list(llm.bind_tools([Person], tool_choice="any").stream("name someone else"))
    evaluator.wait(timeout=10)
    assert [json.loads(answer)[0]["name"] for answer in seen] == ["Person", "Person"]
    assert all(set(json.loads(answer)[0]["arguments"]) == {"name"} for answer in seen)
    assert evaluator.scored == 2 and not router.pending(replies[0].response_metadata["route_id"])
    evaluator.close()


def test_evaluator_samples_a_share_of_traffic(router: Router) -> None:
    evaluator = Evaluator(router, lambda prompt, answer: 0.5, sample_rate=0.25, seed=0)
    llm = ChatBanditRouter(router=router, evaluator=evaluator)
    replies = llm.batch([f"q{i}" for i in range(40)])
    evaluator.wait(timeout=10)
    rated = sum(not router.pending(r.response_metadata["route_id"]) for r in replies)
    assert rated == evaluator.scored and 4 <= rated <= 16
    evaluator.close()


def test_evaluator_failures_are_counted_not_raised(router: Router) -> None:
    evaluator = Evaluator(router, lambda prompt, answer: 2.0, seed=0)
    reply = ChatBanditRouter(router=router, evaluator=evaluator).invoke("hi")
    evaluator.wait(timeout=10)
    assert (evaluator.scored, evaluator.failed) == (0, 1)
    assert router.pending(reply.response_metadata["route_id"])
    evaluator.close()


@pytest.mark.parametrize(("settings", "match"), [({"sample_rate": 1.5}, "sample_rate"),
                                                 ({"max_workers": 0}, "max_workers"),
                                                 ({"score": "judge"}, "score must be a callable")])
def test_evaluator_settings_are_checked(router: Router, settings: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Evaluator(router, **{"score": lambda p, a: 1.0, **settings})


def test_llm_judge_through_litellm(router: Router, server: FakeLLMServer) -> None:
    server.set_behavior("judge", respond=lambda messages: "8")
    judge_card = Model("openai/judge", input_cost_per_token=0.0, output_cost_per_token=0.0,
                       api_base=server.base_url, api_key="sk-test")
    judge = LLMJudge(judge_card, temperature=0, max_retries=0)
    assert judge("What is 2+2?", "4") == 0.8
    request = server.requests[-1]
    assert request.model == "judge" and request.params["temperature"] == 0
    assert "What is 2+2?" in request.messages[-1]["content"] and request.messages[0]["role"] == "system"

    evaluator = Evaluator(router, judge, seed=0)
    reply = ChatBanditRouter(router=router, evaluator=evaluator, models=[SMALL]).invoke("judge me")
    evaluator.wait(timeout=10)
    assert evaluator.scored == 1 and not router.pending(reply.response_metadata["route_id"])
    for reply, grade in (("7/10", 0.7), ("Grade: 6.5 out of 10.", 0.65), (" 10 ", 1.0), ("3\nIt misses 2.", 0.3)):
        server.set_behavior("judge", respond=lambda messages, reply=reply: reply)
        assert judge("q", "a") == grade
    for reply in ("no idea", "Echo: what is 2 + 3?", "Out of 10, 7", "11"):  # a number elsewhere is not a grade
        server.set_behavior("judge", respond=lambda messages, reply=reply: reply)
        with pytest.raises(ValueError, match="does not start with a line that is a grade in \\[0, 10\\]"):
            judge("q", "a")
    evaluator.close()


def test_signed_feedback_and_per_source_caps(server: FakeLLMServer) -> None:
    router = Router(cards(server.base_url), encoder=hashed_bow, seed=0,
                    feedback=FeedbackSettings(feedback_secret="s" * 32, source_limit=1))
    handler = FeedbackHandler(router)
    evaluator = Evaluator(router, lambda prompt, answer: 1.0, seed=0)
    llm = ChatBanditRouter(router=router)
    run_id = uuid.uuid4()
    reply = llm.invoke("signed", config={"callbacks": [handler], "run_id": run_id})
    route_id = reply.response_metadata["route_id"]
    assert reply.response_metadata["feedback_token"]
    with pytest.raises(InvalidFeedbackTokenError):
        router.feedback(route_id, 1.0, source="user-1")
    assert handler.feedback(run_id, 1.0, source="user-1") == [route_id]

    scored = ChatBanditRouter(router=router, evaluator=evaluator).invoke("judged")
    evaluator.wait(timeout=10)
    assert evaluator.scored == 1 and not router.pending(scored.response_metadata["route_id"])
    evaluator.close()

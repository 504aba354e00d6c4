"""End to end: an LCEL chain run 200 times against two local models, each right on one kind of question; users'
ratings (fed back by run id) teach the router which model answers which kind. Real MiniLM encoder."""

from __future__ import annotations

import re
import uuid

import numpy as np
import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from bandit_router import Model, Router, sentence_encoder
from bandit_router.testing import FakeLLMServer, ModelBehavior, last_user_text
from langchain_bandit_router import ChatBanditRouter, FeedbackHandler

CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Egypt": "Cairo", "Peru": "Lima", "Kenya": "Nairobi",
            "Canada": "Ottawa", "Spain": "Madrid", "Norway": "Oslo", "Chile": "Santiago", "Greece": "Athens",
            "Poland": "Warsaw", "Cuba": "Havana", "Ireland": "Dublin", "Austria": "Vienna", "Portugal": "Lisbon"}
RUNS, WINDOW, REQUIRED = 300, 50, 0.8  # over the last 50 runs, >= 80% of each kind go to the right model


def arithmetic(messages: list[dict]) -> str:
    numbers = [int(n) for n in re.findall(r"\d+", last_user_text(messages))]
    return f"The sum is {sum(numbers)}." if numbers else "I am not sure."


def capitals(messages: list[dict]) -> str:
    text = last_user_text(messages)
    return next((f"The capital is {city}." for country, city in CAPITALS.items() if country in text),
                "I am not sure.")


@pytest.fixture
def two_experts():
    with FakeLLMServer({"calc": ModelBehavior(respond=arithmetic), "atlas": ModelBehavior(respond=capitals)}) as server:
        yield server


def test_chain_learns_which_model_answers_which_kind(two_experts: FakeLLMServer) -> None:
    calc = Model("openai/calc", input_cost_per_token=1e-7, output_cost_per_token=4e-7, api_base=two_experts.base_url,
                 api_key="sk-test")
    atlas = Model("openai/atlas", input_cost_per_token=2e-6, output_cost_per_token=8e-6,
                  api_base=two_experts.base_url, api_key="sk-test")
    router = Router([calc, atlas], encoder=sentence_encoder(), seed=0)
    llm = ChatBanditRouter(router=router, cost_weight=0.1)
    chain = ChatPromptTemplate.from_template("{question}") | llm | StrOutputParser()
    handler = FeedbackHandler(router)
    rng = np.random.default_rng(0)
    countries = list(CAPITALS)
    history: list[tuple[str, bool]] = []  # (kind, routed to the right model)
    for _ in range(RUNS):
        if rng.random() < 0.5:
            a, b = rng.integers(2, 99, size=2)
            kind, question, expected = "arithmetic", f"What is {a} plus {b}?", str(a + b)
        else:
            country = countries[rng.integers(len(countries))]
            kind, question, expected = "capital", f"What is the capital of {country}?", CAPITALS[country]
        run_id = uuid.uuid4()
        answer = chain.invoke({"question": question}, config={"callbacks": [handler], "run_id": run_id})
        [route_id] = handler.feedback(run_id, 1.0 if expected in answer else 0.0)
        served = two_experts.requests[-1].model
        history.append((kind, served == ("calc" if kind == "arithmetic" else "atlas")))
        assert not router.pending(route_id)
    for kind in ("arithmetic", "capital"):
        recent = [right for k, right in history[-WINDOW:] if k == kind]
        assert len(recent) >= 15
        assert np.mean(recent) >= REQUIRED, f"{kind}: right model in {np.mean(recent):.0%} of the last runs"
    # what it learned, on questions it never saw: each model's predicted quality is higher on its own kind (the
    # default policy shrinks the prompt's part toward each model's mean until its ratings show it is real)
    sums, cities = router.route("What is 123 plus 456?"), router.route("What is the capital of Mongolia?")
    assert sums.predicted_quality["openai/calc"] > sums.predicted_quality["openai/atlas"] + 0.15
    assert cities.predicted_quality["openai/atlas"] > cities.predicted_quality["openai/calc"] + 0.15

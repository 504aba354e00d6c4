"""An LCEL chain whose chat model is a bandit router, learning from its users' ratings.

Every question goes through `prompt | llm`; `llm` routes it to one of two models; the user's thumbs up or down
(here: whether the answer holds the expected fact) is fed back by the chain's run id.

Without OPENAI_API_KEY it runs offline: a local OpenAI-compatible server plays a cheap model that is right on
arithmetic and an expensive one that is right on capitals, and the router learns which to ask for what.
With OPENAI_API_KEY set it routes between openai/gpt-4o-mini and openai/gpt-4o.

    python examples/langchain_chain.py [--rounds 60] [--cost-weight 0.1]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import uuid

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM's bundled prices, no download
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
from langchain_core.prompts import ChatPromptTemplate

from bandit_router import Model, Router, sentence_encoder
from bandit_router.testing import FakeLLMServer, ModelBehavior, last_user_text
from langchain_bandit_router import ChatBanditRouter, FeedbackHandler

CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Egypt": "Cairo", "Peru": "Lima",
            "Kenya": "Nairobi", "Canada": "Ottawa", "Spain": "Madrid", "Norway": "Oslo", "Greece": "Athens"}


def questions(rounds: int, seed: int) -> list[tuple[str, str, str]]:
    """(kind, question, expected answer) in random order."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(rounds):
        if rng.random() < 0.5:
            a, b = (int(n) for n in rng.integers(2, 99, size=2))
            out.append(("arithmetic", f"What is {a} plus {b}?", str(a + b)))
        else:
            country = list(CAPITALS)[rng.integers(len(CAPITALS))]
            out.append(("capital", f"What is the capital of {country}?", CAPITALS[country]))
    return out


def calculator(messages: list[dict]) -> str:
    numbers = [int(n) for n in re.findall(r"\d+", last_user_text(messages))]
    return f"That is {sum(numbers)}." if numbers else "I do not know."


def atlas(messages: list[dict]) -> str:
    text = last_user_text(messages)
    return next((f"It is {city}." for country, city in CAPITALS.items() if country in text), "I do not know.")


def models(stack: contextlib.ExitStack) -> list[Model | str]:
    """Real models when an OpenAI key is set, else two local fakes (the server stops with `stack`)."""
    if os.environ.get("OPENAI_API_KEY"):
        return ["openai/gpt-4o-mini", "openai/gpt-4o"]
    server = stack.enter_context(FakeLLMServer({"calculator": ModelBehavior(respond=calculator),
                                                "atlas": ModelBehavior(respond=atlas)}))
    return [Model("openai/calculator", input_cost_per_token=1.5e-7, output_cost_per_token=6e-7,
                  api_base=server.base_url, api_key="sk-local"),
            Model("openai/atlas", input_cost_per_token=2.5e-6, output_cost_per_token=1e-5,
                  api_base=server.base_url, api_key="sk-local")]


def main(rounds: int = 60, cost_weight: float = 0.1, seed: int = 0) -> None:
    with contextlib.ExitStack() as stack:
        router = Router(models(stack), encoder=sentence_encoder(), policy="linucb", seed=seed)
        # linucb learns from a few dozen ratings; the default, shrunk-linucb, tries each model 10 times
        # and trusts the prompt only after a few hundred (docs/BENCHMARKS.md)
        llm = ChatBanditRouter(router=router, cost_weight=cost_weight, temperature=0)
        chain = ChatPromptTemplate.from_messages([("system", "Answer in one short sentence."),
                                                  ("human", "{question}")]) | llm
        ratings = FeedbackHandler(router)
        log = []
        for kind, question, expected in questions(rounds, seed):
            run_id = uuid.uuid4()
            reply = chain.invoke({"question": question}, config={"callbacks": [ratings], "run_id": run_id})
            thumbs_up = expected.lower() in reply.text.lower()  # the user's rating
            ratings.feedback(run_id, 1.0 if thumbs_up else 0.0)
            log.append((kind, reply.response_metadata["model_name"], thumbs_up, reply.response_metadata["cost"]))

        half = len(log) // 2
        print(f"{len(log)} questions, cost_weight={cost_weight}, models: {', '.join(router.models)}")
        for label, part in (("first half", log[:half]), ("second half", log[half:])):
            print(f"  {label}: {np.mean([ok for _, _, ok, _ in part]):.0%} rated good, "
                  f"${sum(cost for *_, cost in part):.6f}")
            for kind in ("arithmetic", "capital"):
                chosen = [model for k, model, _, _ in part if k == kind]
                counts = ", ".join(f"{m} x{chosen.count(m)}" for m in router.models if chosen.count(m))
                print(f"    {kind:10s} -> {counts}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--cost-weight", type=float, default=0.1)
    args = parser.parse_args()
    main(args.rounds, args.cost_weight)

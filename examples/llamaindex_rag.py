"""RAG with LlamaIndex through a routed LLM: a cost dial, and evaluator scores fed back as rewards.

A few paragraphs are indexed with the router's own MiniLM sentence encoder; a query engine answers questions
through BanditRouterLLM; a CorrectnessEvaluator grades each answer against a reference, and its grade (1-5,
mapped to [0, 1]) rewards the model that answered. Over the rounds the router learns which model answers well.

Offline (no OPENAI_API_KEY): a local OpenAI-compatible server plays a cheap model that answers with the first
sentence of the retrieved text, an expensive one that finds the sentence answering the question, and the judge.
With OPENAI_API_KEY set, gpt-4o-mini and gpt-4o answer and gpt-4o-mini judges.

    python examples/llamaindex_rag.py [--rounds 4] [--cost-weight 0.1] [--sample-rate 1.0]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
from collections import Counter
from typing import Any, Iterator

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.evaluation import CorrectnessEvaluator

from bandit_router import Model, Router, sentence_encoder
from bandit_router.testing import FakeLLMServer, ModelBehavior, last_user_text
from llamaindex_bandit_router import BanditRouterLLM, EncoderEmbedding, EvaluatorFeedback

DOCUMENTS = [
    "Harbor Valley Library opens at 9 am on weekdays. On Saturdays the library opens at 10 am; Sundays it is closed.",
    "Members may borrow up to 12 items at a time. Loans last three weeks and can be renewed twice online.",
    "Late returns cost 25 cents per item per day. Fines stop growing once they reach 10 dollars per item.",
    "The library card is free for residents of Harbor Valley. Visitors from other towns pay 40 dollars a year.",
    "The maker space on the second floor has two 3D printers. Printing costs 10 cents per gram of filament.",
    "Study rooms seat up to six people. A study room can be booked for at most three hours per day.",
]
QUESTIONS = [  # (question, reference answer)
    ("When does the library open on Saturdays?", "It opens at 10 am on Saturdays."),
    ("How long can a study room be booked per day?", "At most three hours per day."),
    ("How much does 3D printing cost?", "10 cents per gram of filament."),
    ("When do fines for a late item stop growing?", "At 10 dollars per item."),
    ("How many items can a member borrow at a time?", "Up to 12 items at a time."),
    ("How much do visitors from other towns pay for a card?", "40 dollars a year."),
]


# -- the offline stand-ins for real models ---------------------------------------------------------------------
def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 3}


def _context_and_query(messages: list[dict[str, Any]]) -> tuple[list[str], str]:
    prompt = last_user_text(messages)
    context = prompt.split("---------------------")[1] if "---------------------" in prompt else ""
    query = prompt.rsplit("Query:", 1)[-1].replace("Answer:", "")
    return re.split(r"(?<=\.)\s+", context.strip()), query


def hasty(messages: list[dict[str, Any]]) -> str:
    """The cheap model: the first sentence of the retrieved text, relevant or not."""
    return _context_and_query(messages)[0][0]


def careful(messages: list[dict[str, Any]]) -> str:
    """The expensive model: the retrieved sentence sharing most words with the question."""
    sentences, query = _context_and_query(messages)
    return max(sentences, key=lambda s: len(_words(s) & _words(query)))


def grader(messages: list[dict[str, Any]]) -> str:
    """The judge, in CorrectnessEvaluator's format: 5 if the answer holds the reference's facts, else 1."""
    prompt = last_user_text(messages)
    reference = prompt.split("## Reference Answer")[1].split("## Generated Answer")[0]
    answer = prompt.split("## Generated Answer")[1]
    facts = set(re.findall(r"\d+|three|six", reference.lower()))
    hit = facts <= set(re.findall(r"\d+|three|six", answer.lower()))
    return "5.0\nThe answer states the reference's facts." if hit else "1.0\nThe answer misses the facts."


@contextlib.contextmanager
def models() -> Iterator[tuple[list[Model], Model]]:
    """(answering models, judge model): OpenAI's when OPENAI_API_KEY is set, else the local server's."""
    if os.environ.get("OPENAI_API_KEY"):
        yield [Model("openai/gpt-4o-mini"), Model("openai/gpt-4o")], Model("openai/gpt-4o-mini")
        return
    behaviors = {"hasty": ModelBehavior(respond=hasty), "careful": ModelBehavior(respond=careful),
                 "judge": ModelBehavior(respond=grader)}
    with FakeLLMServer(behaviors) as server:
        def card(name: str, price: float) -> Model:
            return Model(f"openai/{name}", input_cost_per_token=price, output_cost_per_token=4 * price,
                         context_window=16_000, max_output_tokens=1_000, api_base=server.base_url, api_key="sk-test")

        yield [card("hasty", 1.5e-7), card("careful", 2.5e-6)], card("judge", 1.5e-7)


# -- the example ------------------------------------------------------------------------------------------------
def main(rounds: int = 4, cost_weight: float = 0.1, sample_rate: float = 1.0, seed: int = 0) -> dict[str, Any]:
    encoder = sentence_encoder()  # one MiniLM for routing and for the index
    with models() as (answering, judging):
        router = Router(answering, encoder=encoder, seed=seed)
        llm = BanditRouterLLM(router, cost_weight=cost_weight)
        judge = BanditRouterLLM(Router([judging], encoder=encoder))  # a one-model router is a plain LLM
        feedback = EvaluatorFeedback(llm, CorrectnessEvaluator(llm=judge), sample_rate=sample_rate, seed=seed)

        index = VectorStoreIndex.from_documents([Document(text=t) for t in DOCUMENTS],
                                                embed_model=EncoderEmbedding(encoder))
        engine = index.as_query_engine(llm=llm, similarity_top_k=1)
        history = []
        for round_ in range(1, rounds + 1):
            chosen: Counter[str] = Counter()
            rewards, cost = [], 0.0
            for question, reference in QUESTIONS:
                with llm.record_routes() as routes:
                    answer = engine.query(question)
                reward = feedback.evaluate(routes, question, answer, reference=reference)
                chosen.update(r["model"] for r in routes)
                cost += sum(r["cost"] for r in routes)
                if reward is not None:
                    rewards.append(reward)
                if round_ == rounds:
                    print(f"  Q: {question}\n  A: {answer}  [{routes[-1]['model']}, reward {reward}]")
            mean = sum(rewards) / len(rewards) if rewards else float("nan")
            history.append({"round": round_, "models": dict(chosen), "evaluated": len(rewards),
                            "mean_reward": mean, "cost_usd": cost})
            print(f"round {round_}: models {dict(chosen)}, {len(rewards)} evaluated, mean reward {mean:.2f}, "
                  f"cost ${cost:.6f} (dial {cost_weight})")

        thrifty = BanditRouterLLM(router, cost_weight=1.0)  # same router and learning, another dial
        with thrifty.record_routes() as routes:
            answer = index.as_query_engine(llm=thrifty, similarity_top_k=1).query(QUESTIONS[0][0])
        route = routes[-1]
        print(f"at dial 1.0: {answer}  [{route['model']}, chosen with probability {route['propensity']:.2f}]")
        return {"rounds": history, "dial_1_model": route["model"], "dial_1_propensity": route["propensity"]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--cost-weight", type=float, default=0.1)
    parser.add_argument("--sample-rate", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    summary = main(args.rounds, args.cost_weight, args.sample_rate, args.seed)
    print("summary:", json.dumps(summary))

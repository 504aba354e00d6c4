"""LangChain's agent (`langchain.agents.create_agent`, a LangGraph graph) over a routed chat model: every step of
the graph is routed on its own (only tool-capable models are eligible while tools are bound), and one rating of
the run reaches every step by the run's id.

Without OPENAI_API_KEY it runs offline against a local OpenAI-compatible server playing two models: both call
the tool, but the cheap one garbles the final answer, so the router learns to pay for the other. With
OPENAI_API_KEY set it routes between openai/gpt-4o-mini and openai/gpt-4o. Needs `pip install langchain`
(which brings LangGraph).

    python examples/langgraph_agent.py [--runs 12]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import uuid

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM's bundled prices, no download
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

import offline_agent
from bandit_router import Router, sentence_encoder
from langchain_bandit_router import ChatBanditRouter, FeedbackHandler


celsius_to_fahrenheit = tool(offline_agent.celsius_to_fahrenheit)


def main(runs: int = 12, cost_weight: float = 0.3, seed: int = 0) -> list[bool]:
    """Run the agent `runs` times, rating each run; returns whether each answer was right."""
    results = []
    with contextlib.ExitStack() as stack:
        router = Router(offline_agent.backend(stack)[0], encoder=sentence_encoder(), policy="linucb", seed=seed)
        # linucb learns from a few dozen ratings; the default, shrunk-linucb, tries each model 10 times
        # and trusts the prompt only after a few hundred (docs/BENCHMARKS.md)
        llm = ChatBanditRouter(router=router, cost_weight=cost_weight, temperature=0)
        graph = create_agent(llm, [celsius_to_fahrenheit])
        ratings = FeedbackHandler(router)
        for i in range(runs):
            celsius = 5 * i
            expected = f"{celsius * 9 / 5 + 32:g}"
            run_id = uuid.uuid4()
            state = graph.invoke({"messages": [("user", f"What is {celsius} degrees Celsius in Fahrenheit? "
                                                         "Use the tool.")]},
                                 config={"callbacks": [ratings], "run_id": run_id})
            steps = [m.response_metadata["model_name"] for m in state["messages"] if isinstance(m, AIMessage)]
            answer = state["messages"][-1].text
            good = expected in answer.replace(".0", "")
            rated = ratings.feedback(run_id, 1.0 if good else 0.0)  # one rating for every step of the run
            results.append(good)
            print(f"run {i:2d}: {' -> '.join(steps)}  ({'good' if good else 'bad'}, {len(rated)} steps rated) "
                  f"{answer[:60]!r}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=12)
    results = main(parser.parse_args().runs)
    half = len(results) // 2
    print(f"right answers: first half {sum(results[:half])}/{half}, second half {sum(results[half:])}/"
          f"{len(results) - half}")

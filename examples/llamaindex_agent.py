"""A LlamaIndex agent workflow (FunctionAgent) over a routed LLM: every step of a run is routed on its own (only
tool-capable models are eligible while tools are bound), the run's routes are collected with `record_routes()`,
and one rating of the run reaches every step.

Without OPENAI_API_KEY it runs offline against a local OpenAI-compatible server playing two models: both call
the tool, but the cheap one garbles the final answer, so the router learns to pay for the other. With
OPENAI_API_KEY set it routes between openai/gpt-4o-mini and openai/gpt-4o.

    python examples/llamaindex_agent.py [--runs 12]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM's bundled prices, no download
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from llama_index.core.agent.workflow import FunctionAgent

import offline_agent
from bandit_router import Router, sentence_encoder
from llamaindex_bandit_router import BanditRouterLLM


async def main(runs: int = 12, cost_weight: float = 0.3, seed: int = 0) -> list[bool]:
    """Run the agent `runs` times, rating each run; returns whether each answer was right."""
    results = []
    with contextlib.ExitStack() as stack:
        # linucb learns from a few dozen ratings; the default, shrunk-linucb, tries each model 10 times and trusts
        # the prompt only after a few hundred (docs/BENCHMARKS.md)
        router = Router(offline_agent.backend(stack)[0], encoder=sentence_encoder(), policy="linucb", seed=seed)
        llm = BanditRouterLLM(router, cost_weight=cost_weight, call_kwargs={"temperature": 0})
        agent = FunctionAgent(tools=[offline_agent.celsius_to_fahrenheit], llm=llm,
                              system_prompt="Use the tool to convert.")
        for i in range(runs):
            celsius = 5 * i
            expected = f"{celsius * 9 / 5 + 32:g}"
            with llm.record_routes() as routes:  # every step of this run
                output = await agent.run(f"What is {celsius} degrees Celsius in Fahrenheit?")
            answer = str(output)
            good = expected in answer.replace(".0", "")
            for route in routes:  # one rating for every step of the run
                llm.feedback(route["route_id"], 1.0 if good else 0.0)
            results.append(good)
            steps = " -> ".join(route["model"] for route in routes)
            print(f"run {i:2d}: {steps}  ({'good' if good else 'bad'}, {len(routes)} steps rated) {answer[:60]!r}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=12)
    results = asyncio.run(main(parser.parse_args().runs))
    half = len(results) // 2
    print(f"right answers: first half {sum(results[:half])}/{half}, second half {sum(results[half:])}/"
          f"{len(results) - half}")

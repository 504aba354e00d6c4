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

from bandit_router import Model, Router, sentence_encoder
from bandit_router.testing import FakeLLMServer, ModelBehavior, echo
from llamaindex_bandit_router import BanditRouterLLM


def celsius_to_fahrenheit(celsius: float) -> float:
    """Convert a temperature from degrees Celsius to degrees Fahrenheit."""
    return celsius * 9 / 5 + 32


def garbled(messages: list[dict]) -> str:
    """The cheap fake's answers: it calls tools fine but cannot read their results."""
    return "It is quite warm, I think." if messages[-1].get("role") == "tool" else echo(messages)


def backend(stack: contextlib.ExitStack) -> list[Model | str]:
    """Real models when an OpenAI key is set, else two local fakes on a server that stops with `stack`."""
    if os.environ.get("OPENAI_API_KEY"):
        return ["openai/gpt-4o-mini", "openai/gpt-4o"]
    server = stack.enter_context(FakeLLMServer({"mini": ModelBehavior(respond=garbled), "max": ModelBehavior()}))
    return [Model("openai/mini", input_cost_per_token=1.5e-7, output_cost_per_token=6e-7, supports_tools=True,
                  api_base=server.base_url, api_key="sk-local"),
            Model("openai/max", input_cost_per_token=2.5e-6, output_cost_per_token=1e-5, supports_tools=True,
                  api_base=server.base_url, api_key="sk-local")]


async def main(runs: int = 12, cost_weight: float = 0.3, seed: int = 0) -> list[bool]:
    """Run the agent `runs` times, rating each run; returns whether each answer was right."""
    results = []
    with contextlib.ExitStack() as stack:
        # linucb learns from a few dozen ratings; the default, shrunk-linucb, tries each model 10 times and trusts
        # the prompt only after a few hundred (docs/BENCHMARKS.md)
        llm = BanditRouterLLM(Router(backend(stack), encoder=sentence_encoder(), policy="linucb", seed=seed),
                              cost_weight=cost_weight,
                              call_kwargs={"temperature": 0})
        agent = FunctionAgent(tools=[celsius_to_fahrenheit], llm=llm, system_prompt="Use the tool to convert.")
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

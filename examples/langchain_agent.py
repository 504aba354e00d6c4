"""A tool-calling agent whose every step is routed: the router picks a model per step (only tool-capable models
are eligible while tools are bound), and a rating of the whole run reaches every step by the run's id.

Without OPENAI_API_KEY it runs offline against a local OpenAI-compatible server playing two models: both call
the tool, but the cheap one garbles the final answer, so the router learns to pay for the other; midway the
expensive one has an outage for one call and that step falls back to the cheap one. With OPENAI_API_KEY set it
routes between openai/gpt-4o-mini and openai/gpt-4o. `--pin` keeps one model for a whole run instead.

    python examples/langchain_agent.py [--runs 12] [--pin]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import uuid

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM's bundled prices, no download
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.tools import tool

import offline_agent
from bandit_router import Router, sentence_encoder
from langchain_bandit_router import ChatBanditRouter, FeedbackHandler


celsius_to_fahrenheit = tool(offline_agent.celsius_to_fahrenheit)
TOOLS = {celsius_to_fahrenheit.name: celsius_to_fahrenheit}


def agent(llm: ChatBanditRouter, max_steps: int = 4):
    """A minimal tool-calling loop: ask, run the requested tools, repeat until the model answers."""
    model = llm.bind_tools(list(TOOLS.values()))

    def run(question: str, config: RunnableConfig) -> dict:
        messages: list[BaseMessage] = [HumanMessage(question)]
        steps = []
        for _ in range(max_steps):
            reply = model.invoke(messages, config=config)  # routed afresh each step (or pinned per thread)
            steps.append(reply.response_metadata["model_name"])
            messages.append(reply)
            if not reply.tool_calls:
                return {"answer": reply.text, "steps": steps}
            messages += [TOOLS[call["name"]].invoke(call) for call in reply.tool_calls]
        return {"answer": "", "steps": steps}

    return RunnableLambda(run)


def main(runs: int = 12, pin: bool = False, cost_weight: float = 0.3, seed: int = 0) -> None:
    with contextlib.ExitStack() as stack:
        models, server = offline_agent.backend(stack)
        router = Router(models, encoder=sentence_encoder(), seed=seed)
        llm = ChatBanditRouter(router=router, cost_weight=cost_weight, pin_model=pin, temperature=0)
        ratings = FeedbackHandler(router)
        run_agent = agent(llm)
        for i in range(runs):
            celsius = 5 * i
            expected = f"{celsius * 9 / 5 + 32:g}"
            if server is not None and i == runs // 2:
                server.set_behavior("max", fail_status=500, fail_times=1)  # a one-call outage
            run_id = uuid.uuid4()
            config = {"callbacks": [ratings], "run_id": run_id, "configurable": {"thread_id": f"run-{i}"}}
            result = run_agent.invoke(f"What is {celsius} degrees Celsius in Fahrenheit? Use the tool.", config=config)
            good = expected in result["answer"].replace(".0", "")
            rated = ratings.feedback(run_id, 1.0 if good else 0.0)  # one rating for every step of the run
            print(f"run {i:2d}: {' -> '.join(result['steps'])}  ({'good' if good else 'bad'}, "
                  f"{len(rated)} steps rated) {result['answer'][:60]!r}")
        print(f"provider failures per model (served by the next-best model instead): {router.failures}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--pin", action="store_true", help="keep one model for a whole run")
    args = parser.parse_args()
    main(args.runs, args.pin)

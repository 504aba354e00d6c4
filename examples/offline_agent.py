"""What the agent examples share: the tool they call, and the two models they route between (real ones when
OPENAI_API_KEY is set, else two local fakes that both call the tool, the cheap one garbling the final answer)."""

from __future__ import annotations

import contextlib
import os

from bandit_router import Model
from bandit_router.testing import FakeLLMServer, ModelBehavior, echo


def celsius_to_fahrenheit(celsius: float) -> float:
    """Convert a temperature from degrees Celsius to degrees Fahrenheit."""
    return celsius * 9 / 5 + 32


def garbled(messages: list[dict]) -> str:
    """The cheap fake's answers: it calls tools fine but cannot read their results."""
    return "It is quite warm, I think." if messages[-1].get("role") == "tool" else echo(messages)


def backend(stack: contextlib.ExitStack) -> tuple[list[Model | str], FakeLLMServer | None]:
    """Real models when an OpenAI key is set, else two local fakes on a server that stops with `stack` (and the
    server, to change its behaviour; None with real models)."""
    if os.environ.get("OPENAI_API_KEY"):
        return ["openai/gpt-4o-mini", "openai/gpt-4o"], None
    server = stack.enter_context(FakeLLMServer({"mini": ModelBehavior(respond=garbled), "max": ModelBehavior()}))
    return [Model("openai/mini", input_cost_per_token=1.5e-7, output_cost_per_token=6e-7, supports_tools=True,
                  api_base=server.base_url, api_key="sk-local"),
            Model("openai/max", input_cost_per_token=2.5e-6, output_cost_per_token=1e-5, supports_tools=True,
                  api_base=server.base_url, api_key="sk-local")], server

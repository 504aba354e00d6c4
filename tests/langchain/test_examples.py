"""The LangChain examples run offline (no OPENAI_API_KEY: they start the local server themselves)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_example(name: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env.update(PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", LITELLM_LOCAL_MODEL_COST_MAP="True")
    done = subprocess.run([sys.executable, str(ROOT / "examples" / name), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_chain_example_learns_from_ratings() -> None:
    out = run_example("langchain_chain.py", "--rounds", "40")
    assert "40 questions" in out
    second_half = out.split("second half:")[1]
    assert second_half.strip().startswith("100% rated good")


def test_agent_example_routes_each_step() -> None:
    out = run_example("langchain_agent.py", "--runs", "8")  # the outage starts at run 4; max's first try is later
    lines = [line for line in out.splitlines() if line.startswith("run ")]
    assert len(lines) == 8 and all("2 steps rated" in line for line in lines)
    assert "'openai/max': 1" in out  # the one-call outage was served by the other model


def test_langgraph_agent_routes_each_step_and_rates_each_run() -> None:
    out = run_example("langgraph_agent.py", "--runs", "8")
    lines = [line for line in out.splitlines() if line.startswith("run ")]
    assert len(lines) == 8 and all("2 steps rated" in line for line in lines)
    assert "second half 4/4" in out  # rated runs taught the router to pick the model that reads tool results

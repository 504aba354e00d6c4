"""examples/llamaindex_agent.py runs offline: a FunctionAgent workflow routed per step and rated per run."""

from __future__ import annotations

from ..langchain.test_examples import run_example


def test_llamaindex_agent_routes_each_step_and_rates_each_run() -> None:
    out = run_example("llamaindex_agent.py", "--runs", "8")
    lines = [line for line in out.splitlines() if line.startswith("run ")]
    assert len(lines) == 8 and all("2 steps rated" in line for line in lines)
    assert "second half 4/4" in out  # rated runs taught the router to pick the model that reads tool results

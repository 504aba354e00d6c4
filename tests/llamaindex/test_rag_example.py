"""examples/llamaindex_rag.py runs end to end offline: MiniLM index, routed query engine, evaluator rewards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_rag_example_learns_from_evaluator_scores_offline() -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}  # offline: the local server
    env.update(PYTHONPATH=str(ROOT), LITELLM_LOCAL_MODEL_COST_MAP="True", HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "examples/llamaindex_rag.py", "--rounds", "4"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.split("summary:", 1)[1])
    first, *_, last = summary["rounds"]
    assert [r["evaluated"] for r in summary["rounds"]] == [6, 6, 6, 6]  # every answer graded (sample rate 1)
    assert all(r["cost_usd"] > 0 for r in summary["rounds"])
    # the cheap model answers 1 question in 6 right; fed the grades, the router moves to the careful model
    assert last["models"].get("openai/careful", 0) >= 5 and last["mean_reward"] >= 5 / 6
    assert last["mean_reward"] >= first["mean_reward"]
    chosen = summary["dial_1_propensity"]
    hasty = chosen if summary["dial_1_model"] == "openai/hasty" else 1 - chosen
    assert hasty > 0.5  # the same router at dial 1.0 mostly saves instead (two models: one's probability gives both)
    assert "A: On Saturdays the library opens at 10 am" in done.stdout

"""examples/budget_new_model.py runs offline: warm start, quiz onboarding with a mix prior, a budgeted stream."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_budget_and_new_model_example_stays_within_its_budget():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run([sys.executable, "examples/budget_new_model.py", "--train", "300", "--stream", "100"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "8 models learned 300 stored prompts" in done.stdout
    assert "llama-3.1-8b-instruct added: quiz mean" in done.stdout and "answers most like" in done.stdout
    limit, spent = (float(v) for v in re.search(r"under a \$([\d.]+) budget: spent \$([\d.]+)", done.stdout).groups())
    assert 0 < spent <= limit

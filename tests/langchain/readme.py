"""Run a README section's Python blocks, in order, against the local server (used by both frameworks' tests).

The blocks name OpenAI models; the server serves those names, `OPENAI_API_BASE` and `litellm.api_base` point
LiteLLM at it, and a proxy that refuses every connection except to 127.0.0.1 keeps any other call offline."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from bandit_router.testing import FakeLLMServer, ModelBehavior, echo

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("gpt-4o-mini", "gpt-4o")


def blocks(section: str) -> list[str]:
    """The ```python blocks of the README section titled `section` (a `## ` heading)."""
    text = (ROOT / "README.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, re.S)


def respond(messages: list[dict[str, Any]]) -> str:
    """Echo, except to an evaluator's grading prompt, which gets a grade."""
    if any("evaluation system" in str(m.get("content")) for m in messages):
        return "4.0\nCorrect."
    return echo(messages)


def run_section(section: str, tmp_path: Path) -> FakeLLMServer:
    """Run the section's blocks as one script; returns the (stopped) server with the requests it received."""
    code = "\n".join(blocks(section))
    with FakeLLMServer({name: ModelBehavior(respond=respond) for name in MODELS}) as server:
        prelude = f"import litellm\nlitellm.api_base = {server.base_url!r}\n"
        env = {**os.environ, "OPENAI_API_BASE": server.base_url, "OPENAI_BASE_URL": server.base_url,
               "OPENAI_API_KEY": "sk-test", "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
               "NO_PROXY": "127.0.0.1,localhost", "PYTHONPATH": str(ROOT), "LITELLM_LOCAL_MODEL_COST_MAP": "True",
               "HF_HUB_OFFLINE": "1"}
        script = tmp_path / "readme_blocks.py"
        script.write_text(prelude + code)
        done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    return server

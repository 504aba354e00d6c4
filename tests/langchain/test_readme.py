"""The README's LangChain code runs as written (against the local server), and `make` provisions what it needs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .readme import MODELS, ROOT, blocks, run_section


def test_readme_langchain_blocks_run(tmp_path: Path) -> None:
    assert blocks("LangChain")
    server = run_section("LangChain", tmp_path)
    assert len(server.requests) >= 2 and {r.model for r in server.requests} <= set(MODELS)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_install_has_the_extras_and_make_test_provisions_redis() -> None:
    install = subprocess.run(["make", "-n", "install"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert '-e ".[langchain,llamaindex,service]"' in install  # every README example, the service's too
    test = subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "apt-get install -y -qq redis-server" in test and test.index("redis-server") < test.index("pytest")
    readme = (ROOT / "README.md").read_text()
    assert 'pip install "./bandit-router[langchain]"' in readme and 'pip install "./bandit-router[llamaindex]"' in readme

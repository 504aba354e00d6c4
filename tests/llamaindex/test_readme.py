"""The README's LlamaIndex code runs as written (against the local server)."""

from __future__ import annotations

from pathlib import Path

from ..langchain.readme import MODELS, blocks, run_section


def test_readme_llamaindex_blocks_run(tmp_path: Path) -> None:
    assert len(blocks("LlamaIndex")) == 3
    server = run_section("LlamaIndex", tmp_path)
    assert {r.model for r in server.requests} <= set(MODELS)
    assert any(r.params.get("tools") for r in server.requests)  # the agent ran
    assert any("evaluation system" in str(r.messages) for r in server.requests)  # the evaluator graded

"""`bandit-router report decisions.db --out DIR` over a log the service wrote."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from bandit_router.cli import main

from .conftest import CHEAP, DEAR, KEYS, start_service


def test_report_from_a_served_log(tmp_path: Path, upstream) -> None:
    log = tmp_path / "decisions.db"
    headers = {"Authorization": f"Bearer {KEYS['team-a']}"}
    with start_service(upstream.base_url, log=str(log)) as served:
        for step in range(12):
            answer = httpx.post(served.url + "/v1/chat/completions", headers=headers, json={
                "model": f"router:{0.5 if step % 2 else 0}", "models": [CHEAP] if step < 8 else [DEAR],
                "messages": [{"role": "user", "content": f"secret {step}"}]}).json()
            if step % 3 == 0:
                httpx.post(served.url + "/v1/feedback", headers=headers, json={"route_id": answer["id"], "score": 0.75})
    assert main(["report", str(log), "--out", str(tmp_path / "report"), "--bins", "4"]) == 0
    for name in ("traffic", "spend", "ratings", "dial"):
        assert (tmp_path / "report" / f"{name}.png").stat().st_size > 5000
    text = (tmp_path / "report" / "report.md").read_text()
    assert "12 decisions" in text and "4 rated (33.3%), mean rating 0.750; dial values used: 0, 0.5" in text
    assert f"| {CHEAP} | 8 | 66.7% | 0 |" in text and f"| {DEAR} | 4 | 33.3% | 0 |" in text
    with sqlite3.connect(log) as conn:  # the service keeps no prompt text in its log
        assert conn.execute("SELECT COUNT(*) FROM decisions WHERE prompt IS NOT NULL").fetchone()[0] == 0


def test_report_errors_name_the_cause(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", str(tmp_path / "missing.db"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "junk.db").write_text("not sqlite")
    assert main(["report", str(tmp_path / "junk.db"), "--out", str(tmp_path)]) == 2
    assert "not a bandit-router decision log" in capsys.readouterr().err


def test_the_report_counts_the_calls_a_model_failed_also_when_another_answered(tmp_path: Path) -> None:
    from bandit_router import Model, Router
    from bandit_router.testing import FakeLLMServer, ModelBehavior

    with FakeLLMServer({"down": ModelBehavior(fail_status=500, fail_times=2), "up": ModelBehavior()}) as server:
        cards = [Model(f"openai/{name}", input_cost_per_token=1e-6, output_cost_per_token=1e-6,
                       api_base=server.base_url, api_key="sk-test") for name in ("down", "up")]
        router = Router(cards, policy="fixed", policy_settings={"model": "openai/down"}, encoder="hashing:16",
                        seed=0, log=tmp_path / "decisions.db")
        served = [router.complete(f"q {i}", num_retries=0).decision.model for i in range(3)]
    assert served == ["openai/up", "openai/up", "openai/down"]  # two fallbacks, then down is back
    assert main(["report", str(tmp_path / "decisions.db"), "--out", str(tmp_path / "report")]) == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "| openai/down | 1 | 33.3% | 2 |" in text and "| openai/up | 2 | 66.7% | 0 |" in text

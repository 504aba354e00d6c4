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

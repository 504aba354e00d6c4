"""benchmarks/peers/compare.py: reading our score off the frontier at a peer's cost, the verdicts, the LiteLLM pass."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

from bandit_router.evaluation.table import load_table
from benchmarks.peers.compare import Curve, at_cost, litellm_run, parse_ours, ratio_rows
from tests.evaluation.conftest import write_table

OURS = Curve("ours", ["dial 0", "dial 0.1", "dial 0.5"],
             score=np.array([[0.60, 0.62], [0.55, 0.57], [0.50, 0.50]]),
             cost=np.array([[80.0, 80.0], [40.0, 40.0], [20.0, 20.0]]))


@pytest.mark.parametrize(("cost", "expected"), [
    (40.0, [0.55, 0.57]),  # a measured point
    (60.0, [0.575, 0.595]),  # halfway along the hull between two dials
    (200.0, [0.60, 0.62]),  # beyond our costliest point: held flat
    (10.0, [0.50, 0.50]),  # below our cheapest point: held flat too (the table flags it)
])
def test_at_cost_reads_the_per_seed_hull(cost: float, expected: list[float]) -> None:
    assert at_cost(OURS, cost) == pytest.approx(expected)


def test_ratio_rows_give_ratio_matching_and_verdict() -> None:
    peer = Curve("peer", ["a", "b", "c"], score=np.array([[0.50, 0.50], [0.58, 0.60], [0.45, 0.47]]),
                 cost=np.array([[41.0, 41.0], [100.0, 100.0], [10.0, 10.0]]))
    near, far, cheap = ratio_rows(OURS, peer)
    assert "| 0.500 @ 41% | 0.561 | 1.123 |" in near and "beyond spread" in near and near.endswith("| yes |")
    assert "higher, within spread" in far  # +0.020 against the peer's and our range of 0.020
    assert far.endswith("| no, but cheaper and better |")
    assert cheap.endswith("| no: our cheapest dial costs more |")


def test_litellm_run_replays_the_seeded_stream(tmp_path) -> None:
    table = load_table(write_table(tmp_path / "t", n=30))
    first = litellm_run(table, 0.9, 0.1, seed=3)
    assert first == litellm_run(table, 0.9, 0.1, seed=3)  # its Thompson draws come from the seed
    assert first != litellm_run(table, 0.9, 0.1, seed=4)
    assert table.scores.min() <= first[0] <= table.scores.max()
    assert table.costs.min() <= first[1] <= table.costs.max()


@pytest.mark.parametrize(("spec", "label", "policy", "settings", "hints"), [
    ("linucb", "linucb", "linucb", {}, False),
    ('hierlin:{"alpha":0.5}', "hierlin alpha=0.5", "hierlin", {"alpha": 0.5}, False),
    ("linucb+tasks", "linucb + task hints", "linucb", {}, True),
    ('linucb+tasks=0.5:{"alpha":1.0}', "linucb alpha=1.0 + task hints (text_weight 0.5)", "linucb", {"alpha": 1.0},
     True),
])
def test_parse_ours(spec: str, label: str, policy: str, settings: dict, hints: bool) -> None:
    parsed_label, sweep = parse_ours(spec)
    assert (parsed_label, list(sweep.policies), dict(sweep.settings[policy]), sweep.task_hints) == (
        label, [policy], settings, hints)
    assert sweep.text_weight == (0.5 if "=0.5" in spec else 0.3)

"""The report and the reference router on tables a user trial found: models alike in mean score or cost, no prices."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from bandit_router.evaluation import load_table
from bandit_router.evaluation.references import full_info_ridge_run, oracle_run, single_model_runs
from bandit_router.evaluation.replay import ReplayRun
from bandit_router.evaluation.report import write_report
from bandit_router.evaluation.table import RoutingTable

from .conftest import topic_vector
from .test_table import priceless_joule_table


def _two_models(scores: list[list[float]], costs: list[list[float]]) -> RoutingTable:
    n = len(scores)
    return RoutingTable("two", [f"p{i}" for i in range(n)], [f"prompt {i}" for i in range(n)], [""] * n, [""] * n,
                        ["a", "b"], {"a": {}, "b": {}}, np.array(scores, float), np.array(costs, float))


@pytest.mark.parametrize("scores, costs, row", [
    ([[1.0, 0.0], [0.0, 1.0]] * 10, [[1.0, 3.0]] * 20, r"\| linucb \| \d\.\d{3} \| n/a \|"),  # same mean score
    ([[1.0, 0.0], [0.5, 0.5]] * 10, [[2.0, 2.0]] * 20, r"\| linucb \| n/a \| \d\.\d{3} \|"),  # same mean cost
])
def test_report_marks_undefined_aiq_and_apgr_n_a(tmp_path: Path, scores, costs, row: str) -> None:
    table = _two_models(scores, costs)
    rows = np.arange(len(table))
    runs = [*single_model_runs(table), *(oracle_run(table, dial) for dial in (0.0, 0.5))]
    for dial in (0.0, 0.5):
        chosen = rows % 2
        runs.append(ReplayRun("linucb", dial, 0, rows, chosen, np.ones(len(rows)), table.scores[rows, chosen],
                              table.costs[rows, chosen]))
    paths = write_report(tmp_path / "out", table, [(run, None) for run in runs])
    assert re.search(row, paths["summary.md"].read_text())


def test_the_reference_router_without_prices_weighs_the_tables_costs(tmp_path: Path) -> None:
    table = load_table(priceless_joule_table(tmp_path / "joules"))
    vectors = np.stack([topic_vector(p) for p in table.prompts])
    quality, thrift = (full_info_ridge_run(table, vectors, dial, seed=0) for dial in (0.0, 1.0))
    assert thrift.mean_cost < quality.mean_cost / 2 and quality.mean_score > thrift.mean_score

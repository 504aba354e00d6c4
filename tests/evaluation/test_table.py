"""The routing-table loader: a well-formed folder loads (CSV and parquet), a malformed one names its defect."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from bandit_router.errors import DataFormatError
from bandit_router.evaluation import load_table

from .conftest import MODELS, write_table


def test_loads_aligned_arrays(table_dir: Path) -> None:
    table = load_table(table_dir)
    assert (len(table), table.models) == (60, list(MODELS))
    assert table.scores.shape == table.costs.shape == (60, 3)
    assert table.tasks[:3] == ["math", "code", "poem"] and table.dropped == {}
    assert [c.name for c in table.model_cards()] == list(MODELS)


def test_parquet_gives_the_same_table(tmp_path: Path) -> None:
    csv_table = load_table(write_table(tmp_path / "csv"))
    parquet_table = load_table(write_table(tmp_path / "parquet", parquet=True))
    assert parquet_table.prompts == csv_table.prompts
    np.testing.assert_array_equal(parquet_table.scores, csv_table.scores)


def _rewrite(path: Path, change) -> None:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    rows = change(rows)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _set_first(field: str, value: str):
    return lambda rows: [{**rows[0], field: value}, *rows[1:]]


@pytest.mark.parametrize("defect, match", [
    (lambda d: (d / "prompts.csv").unlink(), "lacks prompts.csv"),
    (lambda d: (d / "outcomes.csv").unlink(), "lacks outcomes.csv"),
    (lambda d: (d / "models.json").unlink(), "lacks models.json"),
    (lambda d: _rewrite(d / "outcomes.csv", lambda rows: [{k: v for k, v in r.items() if k != "score"} for r in rows]),
     r"lacks column\(s\) \['score'\]"),
    (lambda d: _rewrite(d / "prompts.csv", lambda rows: [{k: v for k, v in r.items() if k != "prompt"} for r in rows]),
     r"lacks column\(s\) \['prompt'\]"),
    (lambda d: _rewrite(d / "outcomes.csv", _set_first("score", "1.5")), r"line 2: score 1.5 is outside \[0, 1\]"),
    (lambda d: _rewrite(d / "outcomes.csv", _set_first("score", "-0.033")), r"score -0.033 is outside \[0, 1\]"),
    (lambda d: _rewrite(d / "outcomes.csv", _set_first("cost", "-1e-6")), "line 2: cost -1e-06 is negative"),
    (lambda d: _rewrite(d / "outcomes.csv", _set_first("score", "high")), "score 'high' is not a number"),
    (lambda d: (d / "models.json").write_text("not json"), "must be JSON with a 'models' object"),
])
def test_malformed_folder_names_its_defect(table_dir: Path, defect, match: str) -> None:
    defect(table_dir)
    with pytest.raises(DataFormatError, match=match):
        load_table(table_dir)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="is not a folder"):
        load_table(tmp_path / "nowhere")


def test_drop_counts_invalid_and_incomplete_rows(table_dir: Path) -> None:
    _rewrite(table_dir / "outcomes.csv", _set_first("score", "-0.033"))  # p0 loses a model's outcome
    _rewrite(table_dir / "outcomes.csv", lambda rows: [r for r in rows if not (r["prompt_id"] == "p1" and
                                                                              r["model"] == "large")])
    table = load_table(table_dir, invalid_rows="drop")
    assert len(table) == 58 and "p0" not in table.prompt_ids and "p1" not in table.prompt_ids
    assert table.dropped == {"outcome rows with invalid score or cost": 1, "prompts missing some model's outcome": 2}

"""The routing-table loader: a well-formed folder loads (CSV and parquet), a malformed one names its defect."""

from __future__ import annotations

import csv
import json
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


def priceless_joule_table(folder: Path) -> Path:
    """The fixture of issue #16: models.json without prices, costs per call in joules, some empty score cells."""
    write_table(folder)
    (folder / "models.json").write_text(json.dumps({"cost_unit": "joule", "models": {"a": {}, "b": {}, "c": {}}}))
    rename = dict(zip(MODELS, "abc"))
    energy = {"a": 40.0, "b": 300.0, "c": 2500.0}  # joules per call, varying with the prompt below

    def change(rows):
        for i, row in enumerate(rows):
            row["model"] = rename[row["model"]]
            row["cost"] = str(energy[row["model"]] * (1 + (i % 7) / 10))
            if row["prompt_id"] in ("p3", "p10") and row["model"] == "b":
                row["score"] = ""
        return rows

    _rewrite(folder / "outcomes.csv", change)
    return folder


def test_a_table_without_prices_in_joules_with_empty_cells(tmp_path: Path) -> None:
    table = load_table(priceless_joule_table(tmp_path / "joules"))
    assert (len(table), table.models, table.cost_unit) == (58, ["a", "b", "c"], "joule")
    assert table.dropped == {"outcome rows with an empty score cell": 2, "prompts missing some model's outcome": 2}
    assert "p3" not in table.prompt_ids and table.costs.min() >= 40.0
    assert "costs in joule" in table.summary() and "2 prompts missing" in table.summary()
    cards = table.model_cards()  # zero prices: the router's cost model learns each model's cost from its calls
    assert [(c.name, c.input_cost_per_token, c.output_cost_per_token) for c in cards] == [
        ("a", 0.0, 0.0), ("b", 0.0, 0.0), ("c", 0.0, 0.0)]


def test_cli_replays_a_table_without_prices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture) -> None:
    from bandit_router.cli import main

    monkeypatch.setenv("BANDIT_ROUTER_CACHE", str(tmp_path / "cache"))
    folder, out = priceless_joule_table(tmp_path / "joules"), tmp_path / "out"
    assert main(["replay", str(folder), "--policy", "linucb", "--dial", "0,0.5", "--seeds", "1", "--out", str(out),
                 "--workers", "1"]) == 0
    assert "costs in joule (dropped: 2 outcome rows with an empty score cell" in capsys.readouterr().err
    summary = (out / "summary.md").read_text()
    assert "costs in joule" in summary and "2 prompts missing some model's outcome" in summary
    assert "Mean cost per prompt (joule)" in summary
    with (out / "results.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["policy"] == "linucb"]
    assert len(rows) == 2 and all(40.0 <= float(r["mean_cost"]) <= 2500.0 * 1.6 for r in rows)


@pytest.mark.parametrize("cell", ["", "  "])
def test_an_empty_cost_cell_is_a_missing_result(table_dir: Path, cell: str) -> None:
    _rewrite(table_dir / "outcomes.csv", _set_first("cost", cell))
    table = load_table(table_dir)
    assert table.dropped == {"outcome rows with an empty cost cell": 1, "prompts missing some model's outcome": 1}


@pytest.mark.parametrize("field, value", [("score", "n/a"), ("cost", "12 J")])
def test_a_non_numeric_cell_names_file_line_and_field(table_dir: Path, field: str, value: str) -> None:
    _rewrite(table_dir / "outcomes.csv", lambda rows: [*rows[:4], {**rows[4], field: value}, *rows[5:]])
    with pytest.raises(DataFormatError, match=rf"outcomes\.csv line 6: {field} '{value}' is not a number"):
        load_table(table_dir)


@pytest.mark.parametrize("models, match", [
    ({"cost_unit": 3, "models": {}}, "cost_unit must be a non-empty string"),
    ({"models": {"small": {"input_price_per_mtok": 1.0}}}, "lacks 'output_price_per_mtok'"),
])
def test_models_json_defects(table_dir: Path, models: dict, match: str) -> None:
    (table_dir / "models.json").write_text(json.dumps(models))
    with pytest.raises(DataFormatError, match=match):
        load_table(table_dir).model_cards()

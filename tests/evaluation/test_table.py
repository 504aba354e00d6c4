"""The routing-table loader: a well-formed folder loads (CSV and parquet), a malformed one names its defect."""

from __future__ import annotations

import csv
import json
import re
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


@pytest.mark.parametrize("stem", ["outcomes", "prompts"])
def test_a_folder_with_both_a_csv_and_a_parquet_file_is_refused(tmp_path: Path, stem: str) -> None:
    folder = write_table(tmp_path / "both", parquet=True)
    write_table(tmp_path / "csv")
    (folder / f"{stem}.csv").write_bytes((tmp_path / "csv" / f"{stem}.csv").read_bytes())
    with pytest.raises(DataFormatError, match=f"both {stem}.parquet and {stem}.csv: remove the one that is not"):
        load_table(folder)


def test_a_parquet_table_without_pyarrow_says_what_to_install(tmp_path: Path, monkeypatch) -> None:
    folder = write_table(tmp_path / "table", parquet=True)
    monkeypatch.setitem(__import__("sys").modules, "pyarrow.parquet", None)  # as if pyarrow were not installed
    with pytest.raises(DataFormatError, match=r"needs pyarrow to be read \(pip install pyarrow\)"):
        load_table(folder)


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


@pytest.mark.parametrize("header, shown, hint", [
    ("prompt_id\tmodel\tscore\tcost", r"\['prompt_id\\tmodel\\tscore\\tcost'\]", "the file must be comma-separated"),
    ("prompt_id;model;score;cost", r"\['prompt_id;model;score;cost'\]", "the file must be comma-separated"),
    ("Prompt_ID,model,score,cost", r"\['Prompt_ID', 'model', 'score', 'cost'\]", "column names are lower case"),
    ("prompt,model,score,cost", r"\['prompt', 'model', 'score', 'cost'\]$", ""),
])
def test_a_header_without_the_columns_is_shown(table_dir: Path, header: str, shown: str, hint: str) -> None:
    path = table_dir / "outcomes.csv"
    path.write_text(header + "\n" + path.read_text().split("\n", 1)[1].replace(",", header[9]))
    with pytest.raises(DataFormatError) as error:
        load_table(table_dir)
    assert re.search(r"outcomes.csv lacks column\(s\) \[.*\]; its header is " + shown, str(error.value))
    assert str(error.value).count("['prompt_id', 'model', 'score', 'cost']") <= 1  # the expected columns once
    assert hint in str(error.value)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="is not a folder"):
        load_table(tmp_path / "nowhere")


def test_drop_counts_invalid_and_incomplete_rows(table_dir: Path) -> None:
    _rewrite(table_dir / "outcomes.csv", _set_first("score", "-0.033"))  # p0 loses a model's outcome
    _rewrite(table_dir / "outcomes.csv", lambda rows: [r for r in rows if not (r["prompt_id"] == "p1" and
                                                                              r["model"] == "large")])
    table = load_table(table_dir, invalid_rows="drop")
    assert len(table) == 58 and "p0" not in table.prompt_ids and "p1" not in table.prompt_ids
    assert table.dropped == {"outcome rows with invalid score or cost": 1,
                             "prompts missing some model's outcome (small lacks 1, large lacks 1)": 2}
    assert "(dropped: 1 outcome rows with invalid score or cost, 2 prompts missing some model's outcome (small " \
           "lacks 1, large lacks 1))" in table.summary()


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
    assert table.dropped == {"outcome rows with an empty score cell": 2,
                             "prompts missing some model's outcome (b lacks 2)": 2}
    assert "p3" not in table.prompt_ids and table.costs.min() >= 40.0
    assert "costs in joule" in table.summary() and "2 prompts missing" in table.summary()
    assert "only in outcomes" not in table.summary()  # every model is listed in models.json
    (tmp_path / "joules" / "models.json").write_text(json.dumps({"cost_unit": "joule", "models": {"a": {}}}))
    summary = load_table(tmp_path / "joules").summary()
    assert "only in outcomes, so unpriced (costs from its rows): ['b', 'c']" in summary
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
    assert table.dropped == {"outcome rows with an empty cost cell": 1,
                             "prompts missing some model's outcome (small lacks 1)": 1}


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


def _map_column(path: Path, column: str, change) -> None:
    _rewrite(path, lambda rows: [{**r, column: change(r[column])} for r in rows])


@pytest.mark.parametrize("rescale", [lambda s: 1 + 4 * s, lambda s: 10 * s, lambda s: 100 * s])
def test_scores_on_another_scale_are_refused_even_with_drop(table_dir: Path, rescale) -> None:
    _map_column(table_dir / "outcomes.csv", "score", lambda s: f"{rescale(float(s)):g}")
    for invalid_rows in ("raise", "drop"):
        with pytest.raises(DataFormatError, match=r"line \d+: score .* is outside \[0, 1\]: scores must be in \[0, 1\]"
                                                  r": rescale .*divide 0-10 scores by 10.*--invalid-rows drop\)"):
            load_table(table_dir, invalid_rows=invalid_rows)


def test_negative_scores_on_many_rows_are_another_scale(table_dir: Path) -> None:
    _map_column(table_dir / "outcomes.csv", "score", lambda s: f"{2 * float(s) - 1:g}")  # a -1..1 scale
    with pytest.raises(DataFormatError, match=r"line 2 and \d+ more of 180 rows: a score below 0 suggests another "
                                              r"scale: scores must be in \[0, 1\]"):
        load_table(table_dir, invalid_rows="drop")


def test_the_drop_hint_gives_both_spellings(table_dir: Path) -> None:
    _rewrite(table_dir / "outcomes.csv", _set_first("cost", "-1"))
    with pytest.raises(DataFormatError, match=r"line 2: cost -1.0 is negative: must be a number >= 0.*"
                                              r"invalid_rows='drop' \(CLI: --invalid-rows drop\)"):
        load_table(table_dir)


def test_scores_may_be_booleans(table_dir: Path) -> None:
    words = iter(["True", "false", "TRUE", "False"])
    _rewrite(table_dir / "outcomes.csv", lambda rows: [{**r, "score": next(words)} for r in rows[:4]] + rows[4:])
    table = load_table(table_dir)
    assert table.scores[0].tolist() == [1.0, 0.0, 1.0] and table.scores[1, 0] == 0.0


def test_a_non_numeric_score_says_what_is_allowed_and_drop_drops_it(table_dir: Path) -> None:
    _rewrite(table_dir / "outcomes.csv", _set_first("score", "yes"))
    with pytest.raises(DataFormatError, match=r"line 2: score 'yes' is not a number: must be a number in \[0, 1\] "
                                              r"\(or true/false\); leave the cell empty for a missing score"):
        load_table(table_dir)
    assert load_table(table_dir, invalid_rows="drop").dropped == {
        "outcome rows with invalid score or cost": 1, "prompts missing some model's outcome (small lacks 1)": 1}


def _repeat(index: int, **change: str):
    return lambda rows: [*rows, {**rows[index], **change}]


def test_identical_duplicates_are_merged_and_counted(table_dir: Path) -> None:
    _rewrite(table_dir / "outcomes.csv", _repeat(4))
    _rewrite(table_dir / "prompts.csv", _repeat(7))
    table = load_table(table_dir)
    assert len(table) == 60 and table.prompt_ids.count("p7") == 1
    assert table.dropped == {"duplicate prompt rows (identical, merged)": 1,
                             "duplicate outcome rows (identical, merged)": 1}
    assert "1 duplicate outcome rows (identical, merged)" in table.summary()


@pytest.mark.parametrize("stem, change, match", [
    ("outcomes", _repeat(4, score="0.5"), r"outcomes\.csv line 182: prompt_id 'p1', model 'coder' repeats .*line 6 "
                                          "with another score or cost"),
    ("prompts", _repeat(7, prompt="another text"), r"prompts\.csv line 62: prompt_id 'p7' repeats .*line 9 with "
                                                   "another prompt"),
])
def test_conflicting_duplicates_are_refused_or_dropped(table_dir: Path, stem: str, change, match: str) -> None:
    _rewrite(table_dir / f"{stem}.csv", change)
    with pytest.raises(DataFormatError, match=match):
        load_table(table_dir)
    table = load_table(table_dir, invalid_rows="drop")
    assert len(table) == 59 and ("p1" if stem == "outcomes" else "p7") not in table.prompt_ids
    reason = {"outcomes": "outcome rows repeating a prompt and model with another score or cost",
              "prompts": "prompt rows repeating a prompt_id with another prompt"}[stem]
    assert table.dropped[reason] == 2


def test_a_byte_order_mark_is_read(table_dir: Path) -> None:
    path = table_dir / "prompts.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert len(load_table(table_dir)) == 60


def test_a_file_that_is_not_utf8_names_its_line(table_dir: Path) -> None:
    path = table_dir / "prompts.csv"
    lines = path.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b"question", "quéstion".encode("cp1252"))
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DataFormatError, match=r"prompts\.csv line 4 \(byte \d+\): b'\\xe9' is not UTF-8: the file "
                                              "must be UTF-8"):
        load_table(table_dir)


def test_ids_and_model_names_that_do_not_line_up_are_counted(table_dir: Path) -> None:
    _map_column(table_dir / "outcomes.csv", "prompt_id", lambda pid: pid.upper())
    with pytest.raises(DataFormatError, match=r"no prompt has an outcome for every model \['small', 'coder', 'large'\]"
                                              r": 60 prompts read; dropped: 180 outcome rows for unknown prompts, 60 "
                                              r"prompts missing .*; no usable outcome row for model\(s\) \['small', "
                                              r"'coder', 'large'\] .*prompt ids such as \['P0', 'P1', 'P2'\], the "
                                              r"prompts file has ids such as \['p0', 'p1', 'p2'\]"):
        load_table(table_dir)


def test_a_model_without_outcome_rows_is_named(table_dir: Path) -> None:
    models = json.loads((table_dir / "models.json").read_text())
    (table_dir / "models.json").write_text(json.dumps({"models": {**models["models"], "gpt-x": {}}}))
    with pytest.raises(DataFormatError, match=r"no usable outcome row for model\(s\) \['gpt-x'\]"):
        load_table(table_dir)


def test_ids_and_model_names_are_stripped_and_integral_ids_match(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = write_table(tmp_path / "ids")
    _map_column(folder / "prompts.csv", "prompt_id", lambda pid: f" {pid[1:]} ")  # " 0 ", " 1 ", ...
    with (folder / "outcomes.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    (folder / "outcomes.csv").unlink()
    rows = [{"prompt_id": float(r["prompt_id"][1:]), "model": f"{r['model']} ", "score": float(r["score"]),
             "cost": float(r["cost"])} for r in rows]
    rows.append({"prompt_id": None, "model": "small", "score": 1.0, "cost": 0.1})  # why pandas wrote float ids
    pq.write_table(pa.Table.from_pylist(rows), folder / "outcomes.parquet")
    with pytest.raises(DataFormatError, match=r"outcomes\.parquet row 181: the prompt_id cell is empty"):
        load_table(folder)
    table = load_table(folder, invalid_rows="drop")
    assert (len(table), table.models, table.prompt_ids[:2]) == (60, list(MODELS), ["0", "1"])
    assert table.dropped == {"outcome rows without a prompt_id or model": 1}


def test_an_empty_model_cell_is_an_invalid_row(table_dir: Path) -> None:
    _rewrite(table_dir / "outcomes.csv", lambda rows: [*rows[:2], {**rows[2], "model": " "}, *rows[3:]])
    with pytest.raises(DataFormatError, match=r"outcomes\.csv line 4: the model cell is empty"):
        load_table(table_dir)
    table = load_table(table_dir, invalid_rows="drop")
    assert table.models == list(MODELS) and "p0" not in table.prompt_ids


def test_a_row_with_more_fields_than_the_header_is_refused(table_dir: Path) -> None:
    path = table_dir / "prompts.csv"
    lines = path.read_text().splitlines()
    lines[5] = "p4,code,,code question 4, with a comma"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"prompts\.csv line 6: 5 fields, but the header has 4 \(prompt_id, "
                                              r"task, split, prompt\): quote a field that holds a comma"):
        load_table(table_dir)


def test_an_unterminated_quote_that_swallows_rows_is_refused(table_dir: Path) -> None:
    path = table_dir / "prompts.csv"
    lines = path.read_text().splitlines()
    lines[3] = 'p2,poem,,"poem question 2'  # the quote runs on to the next quote, in p6's row
    lines[7] = 'p6,math,,"math question 6"'
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"prompts\.csv line 4: the prompt of prompt_id 'p2' holds a line "
                                              r"starting with 'p3', an id that outcome rows name .*an unterminated "
                                              "quote probably swallowed the rows after it"):
        load_table(table_dir)


@pytest.mark.parametrize("parquet", [False, True])
def test_task_and_split_columns_may_be_absent(tmp_path: Path, parquet: bool) -> None:
    folder = write_table(tmp_path / "plain")
    _rewrite(folder / "prompts.csv", lambda rows: [{"prompt_id": r["prompt_id"], "prompt": r["prompt"]} for r in rows])
    if parquet:
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        pq.write_table(pcsv.read_csv(folder / "prompts.csv"), folder / "prompts.parquet")
        (folder / "prompts.csv").unlink()
    table = load_table(folder)
    assert len(table) == 60 and set(table.tasks) == set(table.splits) == {""}

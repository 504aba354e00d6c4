"""Routing tables: prompts, and every model's score and cost on each, read from a folder.

Layout (see the shared data README): prompts.csv (prompt_id, task, split, prompt), outcomes.csv
(prompt_id, model, score, cost), models.json ({"cost_unit", "models": {name: {input_price_per_mtok, ...}}}).
Parquet files with the same stems may replace them (a folder holding both a stem's .csv and .parquet is refused).
Costs may be in any unit (`cost_unit`: usd, joule, ...), and a model may come without prices (`{}`): outcomes.csv
gives each call's cost, which is all a replay needs. An empty score or cost cell means the result is missing;
prompts lacking an outcome for some model are dropped and counted, with the reason (naming the models that lack
outcomes), in `RoutingTable.dropped`. CSV files are UTF-8 (a byte-order mark is skipped).
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..checks import json_too_deep
from ..errors import DataFormatError
from ..models import Model

__all__ = ["RoutingTable", "load_table", "bundled_table_path"]

PROMPT_COLUMNS = ("prompt_id", "task", "split", "prompt")
OUTCOME_COLUMNS = ("prompt_id", "model", "score", "cost")
PRICE_KEYS = ("input_price_per_mtok", "output_price_per_mtok")
DROP_HINT = "load with invalid_rows='drop' (CLI: --invalid-rows drop) to skip such rows"
RESCALE_HINT = ("scores must be in [0, 1]: rescale scores on another scale before loading (e.g. divide 0-10 scores "
                "by 10, percentages by 100)")
ALLOWED = {"score": "a number in [0, 1] (or true/false); leave the cell empty for a missing score",
           "cost": "a number >= 0; leave the cell empty for a missing cost"}
BOOLEANS = {"true": 1.0, "false": 0.0}
NEGATIVE_ROWS, NEGATIVE_SHARE = 5, 0.01  # more rows with a negative score than both: another scale
CONFLICTING_PROMPTS = "prompt rows repeating a prompt_id with another prompt"
CONFLICTING_OUTCOMES = "outcome rows repeating a prompt and model with another score or cost"
EXTRA_FIELDS = "\0extra fields"  # csv.DictReader's restkey: a row's fields beyond the header
INTEGRAL_ID = re.compile(r"^(-?\d+)\.0+$")
MAX_DEPTH = 32  # JSON nesting of models.json; deeper would make json.loads recurse without bound


@dataclass
class RoutingTable:
    """Aligned arrays: row i is prompt i, column k is model k."""

    name: str
    prompt_ids: list[str]
    prompts: list[str]
    tasks: list[str]
    splits: list[str]
    models: list[str]
    model_info: dict[str, dict[str, Any]]
    scores: np.ndarray
    costs: np.ndarray
    cost_unit: str = "usd"
    dropped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def best(self) -> int:
        """Column of the best single model: the highest mean score."""
        return int(self.scores.mean(axis=0).argmax())

    @property
    def priced(self) -> bool:
        """Whether models.json gives every model prices (else some costs are known only from outcomes.csv)."""
        return all(any(key in self.model_info.get(m, {}) for key in PRICE_KEYS) for m in self.models)

    def model_cards(self) -> list[Model]:
        """Model cards with this table's prices (per Mtok in models.json, per token on the card).

        A model listed without prices gets zero prices: the router's cost model then learns its cost from the
        calls it settles (see `bandit_router.costs`). A model with one price but not the other is an error.
        """
        cards = []
        for name in self.models:
            info = self.model_info.get(name, {})
            prices = [info.get(key) for key in PRICE_KEYS]
            if prices.count(None) == 1:
                missing = PRICE_KEYS[prices.index(None)]
                raise DataFormatError(f"{self.name}: models.json gives {name!r} one price but lacks {missing!r} "
                                      "(give both prices, or neither to learn costs from outcomes.csv)")
            per_token = [0.0 if p is None else _number(p, key, f"models.json model {name!r}") / 1e6
                         for p, key in zip(prices, PRICE_KEYS)]
            cards.append(Model(name, input_cost_per_token=per_token[0], output_cost_per_token=per_token[1],
                               description=info.get("description", ""), context_window=None))
        return cards

    def subset(self, rows: np.ndarray) -> "RoutingTable":
        """The table restricted to `rows` (indices or a boolean mask)."""
        idx = np.arange(len(self))[rows]
        pick = lambda values: [values[i] for i in idx]  # noqa: E731
        return RoutingTable(self.name, pick(self.prompt_ids), pick(self.prompts), pick(self.tasks),
                            pick(self.splits), list(self.models), self.model_info, self.scores[idx],
                            self.costs[idx], self.cost_unit, dict(self.dropped))

    def summary(self) -> str:
        dropped = ", ".join(f"{n} {why}" for why, n in self.dropped.items()) or "none"
        unlisted = [m for m in self.models if m not in self.model_info]
        return (f"{self.name}: {len(self)} prompts x {len(self.models)} models, costs in {self.cost_unit} "
                f"(dropped: {dropped})" + (f"; only in outcomes, so unpriced (costs from its rows): {unlisted}"
                                           if unlisted else ""))


def bundled_table_path() -> Path:
    """The llmrouter-9 set shipped with the package (MIT licence, notice in its README)."""
    return Path(str(resources.files("bandit_router") / "data" / "llmrouter-9"))


def _rows(folder: Path, stem: str, columns: tuple[str, ...],
          optional: tuple[str, ...] = ()) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, row) for each row of `stem`.parquet or `stem`.csv, `where` naming the file and the row (in a CSV, the
    line it starts on). Columns in `optional` may be absent: their cells are then None."""
    parquet, csv_path = folder / f"{stem}.parquet", folder / f"{stem}.csv"
    if parquet.exists() and csv_path.exists():
        raise DataFormatError(f"{folder} holds both {parquet.name} and {csv_path.name}: remove the one that is not "
                              "current (the loader does not guess which is)")
    if parquet.exists():
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise DataFormatError(f"{parquet} needs pyarrow to be read (pip install pyarrow), or write it as "
                                  f"{csv_path.name}") from None

        data = pq.read_table(parquet)
        present = _columns(parquet, data.column_names, columns, optional)
        for i, row in enumerate(data.select(present).to_pylist(), start=1):
            yield f"{parquet} row {i}", {**dict.fromkeys(columns), **row}
        return
    if not csv_path.exists():
        raise DataFormatError(f"{folder} lacks {stem}.csv (or {stem}.parquet)")
    yield from _csv_rows(csv_path, columns, optional)


def _columns(path: Path, present: list[str], columns: tuple[str, ...], optional: tuple[str, ...]) -> list[str]:
    """The `columns` that `present` holds; DataFormatError when one not in `optional` is missing."""
    missing = [c for c in columns if c not in present and c not in optional]
    if missing:
        may = f" ({' and '.join(optional)} may be absent)" if optional else ""
        raise DataFormatError(f"{path} lacks column(s) {missing}{may}; its header is {present!r:.300}"
                              f"{_header_hint(present, columns)}")
    return [c for c in columns if c in present]


def _header_hint(present: list[str], columns: tuple[str, ...]) -> str:
    """What a header that misses expected columns probably got wrong: the separator or the spelling."""
    if len(present) == 1 and any(sep in present[0] for sep in ("\t", ";")):
        return ": the file must be comma-separated"
    if any(name != name.strip().lower() and name.strip().lower() in columns for name in present):
        return ": column names are lower case, without spaces around them"
    return ""


def _csv_text(path: Path) -> str:
    """The text of a UTF-8 file, without its byte-order mark if it has one."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataFormatError(f"{path} line {line} (byte {e.start}): {data[e.start:e.start + 1]!r} is not UTF-8: the "
                              "file must be UTF-8 (save it again as UTF-8, e.g. if it is cp1252 or latin-1)") from None


def _csv_rows(path: Path, columns: tuple[str, ...], optional: tuple[str, ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, row) for each row of a CSV file; a row with more fields than the header is an error."""
    csv.field_size_limit(sys.maxsize)
    reader = csv.DictReader(io.StringIO(_csv_text(path), newline=""), restkey=EXTRA_FIELDS)
    header = reader.fieldnames or []
    _columns(path, header, columns, optional)
    start = reader.line_num + 1
    for row in reader:
        where = f"{path} line {start}"
        if EXTRA_FIELDS in row:
            raise DataFormatError(f"{where}: {len(header) + len(row[EXTRA_FIELDS])} fields, but the header has "
                                  f"{len(header)} ({', '.join(header)}): quote a field that holds a comma")
        start = reader.line_num + 1
        yield where, {**dict.fromkeys(columns), **row}


def _empty(value: Any) -> bool:
    """Whether a cell holds nothing (an empty CSV cell, a parquet null): a missing result, not a defect."""
    return value is None or (isinstance(value, str) and not value.strip()) or (
        isinstance(value, float) and np.isnan(value))


def _id(value: Any) -> str:
    """A prompt id as stripped text, an integral number as an integer: 1, 1.0 and "1.0" are "1" (pandas writes
    float ids once a column holds a null)."""
    if _empty(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return INTEGRAL_ID.sub(r"\1", str(value).strip())


def _name(value: Any) -> str:
    """A model name as stripped text ("" for an empty cell)."""
    return "" if _empty(value) else str(value).strip()


def _number(value: Any, what: str, where: str) -> float:
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float range (JSON allows any)
        raise DataFormatError(f"{where}: {what} {value!r:.40} is not finite") from None
    except (TypeError, ValueError):
        raise DataFormatError(f"{where}: {what} {value!r} is not a number") from None
    if not np.isfinite(number):
        raise DataFormatError(f"{where}: {what} {value!r} is not finite")
    return number


def _cell(value: Any, field: str) -> tuple[float, str | None]:
    """An outcome cell as a number (a score may be true/false), and what is wrong with it when it is not a finite
    number."""
    text = str(value).strip().lower()
    if field == "score" and text in BOOLEANS:
        return BOOLEANS[text], None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return np.nan, f"{field} {value!r} is not a number: must be {ALLOWED[field]}"
    return number, None if np.isfinite(number) else f"{field} {value!r} is not finite: must be {ALLOWED[field]}"


@dataclass
class _Prompt:
    text: str
    task: str
    split: str
    where: str = field(compare=False)


class _Invalid:
    """Invalid rows: an error (invalid_rows='raise'), or dropped and counted by reason (invalid_rows='drop')."""

    def __init__(self, invalid_rows: str) -> None:
        if invalid_rows not in ("raise", "drop"):
            raise DataFormatError(f"invalid_rows must be 'raise' or 'drop', got {invalid_rows!r}")
        self.drop = invalid_rows == "drop"
        self.dropped: dict[str, int] = {}

    def __call__(self, where: str, problem: str, reason: str, n: int = 1) -> None:
        """Raise `problem` at `where`, or count `n` rows dropped for `reason`."""
        if not self.drop:
            raise DataFormatError(f"{where}: {problem}; {DROP_HINT}")
        self.count(reason, n)

    def count(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + n


def _read_models(folder: Path) -> tuple[dict[str, dict[str, Any]], str]:
    """models.json's models (names stripped) and cost unit."""
    models_path = folder / "models.json"
    if not models_path.exists():
        raise DataFormatError(f"{folder} lacks models.json: {{\"cost_unit\": \"usd\", \"models\": {{name: "
                              f"{{\"input_price_per_mtok\": ..., \"output_price_per_mtok\": ...}} or {{}}}}}} (README "
                              f"\"Data\")")
    data = models_path.read_bytes()
    try:
        text = data.decode(json.detect_encoding(data), "surrogatepass")  # as json.loads decodes bytes
        if json_too_deep(text, MAX_DEPTH):
            raise DataFormatError(f"{models_path} nests deeper than {MAX_DEPTH} levels: not a models.json")
        meta = json.loads(text)
        model_info = {str(name).strip(): info for name, info in dict(meta["models"]).items()}
    except DataFormatError:
        raise
    except (ValueError, KeyError, TypeError):  # also bad JSON or text encoding
        raise DataFormatError(f"{models_path} must be JSON with a 'models' object") from None
    cost_unit = meta.get("cost_unit", "usd")
    if not isinstance(cost_unit, str) or not cost_unit.strip():
        raise DataFormatError(f"{models_path}: cost_unit must be a non-empty string (e.g. 'usd', 'joule'), "
                              f"got {cost_unit!r}")
    if not all(isinstance(info, dict) for info in model_info.values()):
        raise DataFormatError(f"{models_path}: each model must map to an object ({{}} when it has no prices)")
    return model_info, cost_unit.strip()


def _read_prompts(folder: Path, invalid: _Invalid) -> tuple[dict[str, _Prompt], set[str]]:
    """The prompts by id, and the ids given twice with different prompts (left out of the table)."""
    prompts: dict[str, _Prompt] = {}
    conflicting: set[str] = set()
    for where, row in _rows(folder, "prompts", PROMPT_COLUMNS, optional=("task", "split")):
        pid = _id(row["prompt_id"])
        if not pid:
            invalid(where, "the prompt_id cell is empty: every prompt needs an id", "prompt rows without a prompt_id")
            continue
        prompt = _Prompt(*("" if row[c] is None else str(row[c]) for c in ("prompt", "task", "split")), where)
        seen = prompts.setdefault(pid, prompt)
        if seen is prompt:
            continue
        if pid in conflicting:
            invalid.count(CONFLICTING_PROMPTS)
        elif seen == prompt:
            invalid.count("duplicate prompt rows (identical, merged)")
        else:
            invalid(where, f"prompt_id {pid!r} repeats {seen.where} with another prompt, task or split: give each "
                    "prompt its own id", CONFLICTING_PROMPTS, n=2)
            conflicting.add(pid)
    return prompts, conflicting


def _outcome(where: str, row: dict[str, Any], invalid: _Invalid, negative: list[str]) -> tuple[float, float] | None:
    """(score, cost) of an outcome row, or None for a row dropped (and counted) as a missing result or invalid.

    A score above 1 is an error even with invalid_rows='drop': it means another scale (1-5, 0-10, percent), of
    which dropping would keep only the lowest scores. A negative score is dropped like any invalid cell (routerarena-2
    has one, -0.033); `negative` collects where, for `_check_negative`.
    """
    empty = [name for name in ("score", "cost") if _empty(row[name])]
    if empty:  # no result of this model on this prompt: the prompt is dropped below, and counted
        invalid.count(f"outcome rows with an empty {' and '.join(empty)} cell")
        return None
    (score, bad_score), (cost, bad_cost) = _cell(row["score"], "score"), _cell(row["cost"], "cost")
    if score > 1:
        raise DataFormatError(f"{where}: score {score} is outside [0, 1]: {RESCALE_HINT}; invalid_rows='drop' "
                              "(CLI: --invalid-rows drop) does not skip scores above 1")
    if score < 0:
        negative.append(where)
    problem = bad_score or bad_cost or (f"score {score} is outside [0, 1]: {RESCALE_HINT}" if score < 0 else
                                        f"cost {cost} is negative: must be {ALLOWED['cost']}" if cost < 0 else None)
    if problem:
        invalid(where, problem, "outcome rows with invalid score or cost")
        return None
    return score, cost


def _check_negative(negative: list[str], rows: int) -> None:
    """Refuse negative scores on more than 5 rows and 1% of them: another scale (-1..1), not stray defects."""
    if len(negative) > max(NEGATIVE_ROWS, NEGATIVE_SHARE * rows):
        raise DataFormatError(f"{negative[0]} and {len(negative) - 1} more of {rows} rows: a score below 0 "
                              f"suggests another scale: {RESCALE_HINT}; invalid_rows='drop' (CLI: --invalid-rows drop) "
                              f"skips at most {NEGATIVE_ROWS} rows or {NEGATIVE_SHARE:.0%} of the rows with one")


def _read_outcomes(folder: Path, prompts: dict[str, _Prompt], invalid: _Invalid, models: dict[str, None]
                   ) -> tuple[dict[str, dict[str, tuple[float, float, str]]], dict[str, str]]:
    """Each prompt's (score, cost, where) by model, and where the outcome rows of unknown prompt ids are; `models`
    gains the models outcomes.csv adds to models.json's."""
    outcomes: dict[str, dict[str, tuple[float, float, str]]] = {}
    conflicting: set[tuple[str, str]] = set()
    unknown: dict[str, str] = {}
    negative: list[str] = []
    rows = 0
    for rows, (where, row) in enumerate(_rows(folder, "outcomes", OUTCOME_COLUMNS), start=1):
        pid, model = _id(row["prompt_id"]), _name(row["model"])
        if not (pid and model):
            invalid(where, f"the {'model' if pid else 'prompt_id'} cell is empty: every outcome row names a prompt "
                    "and a model", "outcome rows without a prompt_id or model")
            continue
        result = _outcome(where, row, invalid, negative)
        if result is None:
            continue
        if pid not in prompts:
            unknown.setdefault(pid, where)
            invalid.count("outcome rows for unknown prompts")
            continue
        by_model = outcomes.setdefault(pid, {})
        seen = by_model.setdefault(model, (*result, where))
        models.setdefault(model, None)
        if seen[2] == where:
            continue
        if (pid, model) in conflicting:
            invalid.count(CONFLICTING_OUTCOMES)
        elif seen[:2] == result:
            invalid.count("duplicate outcome rows (identical, merged)")
        else:
            invalid(where, f"prompt_id {pid!r}, model {model!r} repeats {seen[2]} with another score or cost: give one "
                    "row per prompt and model", CONFLICTING_OUTCOMES, n=2)
            conflicting.add((pid, model))
    _check_negative(negative, rows)
    for pid, model in conflicting:
        del outcomes[pid][model]
    return outcomes, unknown


def _check_quotes(prompts: dict[str, _Prompt], unknown: dict[str, str]) -> None:
    """Refuse a prompt holding a line that starts with an unknown prompt id of outcomes.csv and a comma: an
    unterminated quote swallowed the rows after it into its text."""
    for pid, prompt in prompts.items() if unknown else ():
        for line in prompt.text.splitlines()[1:]:
            head = _id(line.split(",", 1)[0]) if "," in line else ""
            if head in unknown:
                raise DataFormatError(
                    f"{prompt.where}: the prompt of prompt_id {pid!r} holds a line starting with {head!r}, an id that "
                    f"outcome rows name ({unknown[head]}) but no prompt row has: an unterminated quote probably "
                    "swallowed the rows after it (close it, and write a quote inside a quoted field as \"\")")


def _missing(models: list[str], outcomes: list[dict[str, Any]]) -> str:
    """The reason prompts lacking some model's outcome are dropped, naming each model that lacks outcomes and on
    how many of the prompts, most first."""
    lacking = {m: sum(m not in by_model for by_model in outcomes) for m in models}
    named = sorted((m for m in models if lacking[m]), key=lambda m: -lacking[m])
    return "prompts missing some model's outcome (" + ", ".join(f"{m} lacks {lacking[m]}" for m in named) + ")"


def _no_complete_prompt(folder: Path, prompts: dict[str, _Prompt], models: list[str],
                        outcomes: dict[str, dict[str, tuple[float, float, str]]], unknown: dict[str, str],
                        dropped: dict[str, int]) -> str:
    """Why no prompt has an outcome for every model: the counts, models without outcomes and ids that do not match."""
    notes = [f"{len(prompts)} prompts read",
             "dropped: " + (", ".join(f"{n} {why}" for why, n in dropped.items()) or "none")]
    lacking = [m for m in models if not any(m in by_model for by_model in outcomes.values())]
    if lacking:
        notes.append(f"no usable outcome row for model(s) {lacking} (spell them alike in models.json and outcomes)")
    if unknown:
        notes.append(f"outcomes name prompt ids such as {list(unknown)[:3]}, the prompts file has ids such as "
                     f"{list(prompts)[:3]}")
    return f"{folder}: no prompt has an outcome for every model {models}: " + "; ".join(notes)


def load_table(path: str | Path, invalid_rows: str = "raise") -> RoutingTable:
    """Read a routing-table folder; DataFormatError names the file, row and field of any defect.

    Ids and model names are stripped, integral ids read alike (1, 1.0, "1.0"); absent task and split columns are
    empty; scores may be true/false. Identical duplicate rows are merged (and counted in `dropped`).
    `invalid_rows="drop"` drops rows with an empty id or model, a score or cost that is not a number, a negative cost
    or score, and every copy of a row repeated with other values (counted in `dropped`; their prompt then lacks that
    model) instead of raising. Scores above 1, or negative on many rows, are errors either way: see `_outcome`.
    """
    invalid = _Invalid(invalid_rows)
    folder = Path(path)
    if not folder.is_dir():
        raise DataFormatError(f"{folder} is not a folder")
    model_info, cost_unit = _read_models(folder)
    prompts, conflicting = _read_prompts(folder, invalid)
    model_order: dict[str, None] = dict.fromkeys(model_info)
    outcomes, unknown = _read_outcomes(folder, prompts, invalid, model_order)
    _check_quotes(prompts, unknown)
    models = list(model_order)
    candidates = [pid for pid in prompts if pid not in conflicting]
    keep = [pid for pid in candidates if len(outcomes.get(pid, {})) == len(models)]
    if len(keep) < len(candidates):
        invalid.count(_missing(models, [outcomes.get(pid, {}) for pid in candidates]), len(candidates) - len(keep))
    dropped = {why: n for why, n in invalid.dropped.items() if n}
    if not keep:
        raise DataFormatError(_no_complete_prompt(folder, prompts, models, outcomes, unknown, dropped))
    scores = np.array([[outcomes[pid][m][0] for m in models] for pid in keep])
    costs = np.array([[outcomes[pid][m][1] for m in models] for pid in keep])
    pick = [prompts[pid] for pid in keep]
    return RoutingTable(folder.name, keep, [p.text for p in pick], [p.task for p in pick], [p.split for p in pick],
                        models, model_info, scores, costs, cost_unit, dropped)

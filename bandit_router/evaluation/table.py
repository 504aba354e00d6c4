"""Routing tables: prompts, and every model's score and cost on each, read from a folder.

Layout (see the shared data README): prompts.csv (prompt_id, task, split, prompt), outcomes.csv
(prompt_id, model, score, cost), models.json ({"cost_unit", "models": {name: {input_price_per_mtok, ...}}}).
Parquet files with the same stems are read too. Costs may be in any unit (`cost_unit`: usd, joule, ...), and a
model may come without prices (`{}`): outcomes.csv gives each call's cost, which is all a replay needs. An empty
score or cost cell means the result is missing; prompts lacking an outcome for some model are dropped and
counted, with the reason, in `RoutingTable.dropped`.
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import DataFormatError
from ..models import Model

__all__ = ["RoutingTable", "load_table", "bundled_table_path"]

PROMPT_COLUMNS = ("prompt_id", "task", "split", "prompt")
OUTCOME_COLUMNS = ("prompt_id", "model", "score", "cost")
PRICE_KEYS = ("input_price_per_mtok", "output_price_per_mtok")


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
        return (f"{self.name}: {len(self)} prompts x {len(self.models)} models, costs in {self.cost_unit} "
                f"(dropped: {dropped})")


def bundled_table_path() -> Path:
    """The llmrouter-9 set shipped with the package (MIT licence, notice in its README)."""
    return Path(str(resources.files("bandit_router") / "data" / "llmrouter-9"))


def _rows(folder: Path, stem: str, columns: tuple[str, ...]) -> Iterator[dict[str, str]]:
    parquet, csv_path = folder / f"{stem}.parquet", folder / f"{stem}.csv"
    if parquet.exists():
        import pyarrow.parquet as pq

        data = pq.read_table(parquet)
        missing = [c for c in columns if c not in data.column_names]
        if missing:
            raise DataFormatError(f"{parquet} lacks column(s) {missing}; required: {list(columns)}")
        yield from data.select(list(columns)).to_pylist()
        return
    if not csv_path.exists():
        raise DataFormatError(f"{folder} lacks {stem}.csv (or {stem}.parquet)")
    csv.field_size_limit(sys.maxsize)
    with csv_path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise DataFormatError(f"{csv_path} lacks column(s) {missing}; required: {list(columns)}")
        yield from reader


def _empty(value: Any) -> bool:
    """Whether a cell holds nothing (an empty CSV cell, a parquet null): a missing result, not a defect."""
    return value is None or (isinstance(value, str) and not value.strip()) or (
        isinstance(value, float) and np.isnan(value))


def _number(value: Any, what: str, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataFormatError(f"{where}: {what} {value!r} is not a number") from None
    if not np.isfinite(number):
        raise DataFormatError(f"{where}: {what} {value!r} is not finite")
    return number


def load_table(path: str | Path, invalid_rows: str = "raise") -> RoutingTable:
    """Read a routing-table folder; DataFormatError names the file, row and field of any defect.

    `invalid_rows="drop"` drops outcome rows with a score outside [0, 1] or a negative cost (counted in
    `dropped`, and their prompt then lacks that model) instead of raising.
    """
    if invalid_rows not in ("raise", "drop"):
        raise DataFormatError(f"invalid_rows must be 'raise' or 'drop', got {invalid_rows!r}")
    folder = Path(path)
    if not folder.is_dir():
        raise DataFormatError(f"{folder} is not a folder")
    models_path = folder / "models.json"
    if not models_path.exists():
        raise DataFormatError(f"{folder} lacks models.json")
    try:
        meta = json.loads(models_path.read_text())
        model_info = dict(meta["models"])
    except (ValueError, KeyError, TypeError):
        raise DataFormatError(f"{models_path} must be JSON with a 'models' object") from None
    cost_unit = meta.get("cost_unit", "usd")
    if not isinstance(cost_unit, str) or not cost_unit.strip():
        raise DataFormatError(f"{models_path}: cost_unit must be a non-empty string (e.g. 'usd', 'joule'), "
                              f"got {cost_unit!r}")
    if not all(isinstance(info, dict) for info in model_info.values()):
        raise DataFormatError(f"{models_path}: each model must map to an object ({{}} when it has no prices)")

    prompts: dict[str, tuple[str, str, str]] = {}
    for row in _rows(folder, "prompts", PROMPT_COLUMNS):
        prompts[str(row["prompt_id"])] = (row["prompt"] or "", row["task"] or "", row["split"] or "")
    outcomes: dict[str, dict[str, tuple[float, float]]] = {}
    model_order: dict[str, None] = dict.fromkeys(model_info)
    dropped = {"outcome rows for unknown prompts": 0, "outcome rows with invalid score or cost": 0}
    parquet = (folder / "outcomes.parquet").exists()
    for line, row in enumerate(_rows(folder, "outcomes", OUTCOME_COLUMNS), start=1 if parquet else 2):
        where = f"{folder / 'outcomes.parquet'} row {line}" if parquet else f"{folder / 'outcomes.csv'} line {line}"
        empty = [name for name in ("score", "cost") if _empty(row[name])]
        if empty:  # no result of this model on this prompt: the prompt is dropped below, and counted
            reason = f"outcome rows with an empty {' and '.join(empty)} cell"
            dropped[reason] = dropped.get(reason, 0) + 1
            continue
        score = _number(row["score"], "score", where)
        cost = _number(row["cost"], "cost", where)
        problem = (f"score {score} is outside [0, 1]" if not 0.0 <= score <= 1.0
                   else f"cost {cost} is negative" if cost < 0 else None)
        if problem and invalid_rows == "raise":
            raise DataFormatError(f"{where}: {problem} (load with invalid_rows='drop' to skip such rows)")
        if problem:
            dropped["outcome rows with invalid score or cost"] += 1
            continue
        pid = str(row["prompt_id"])
        if pid not in prompts:
            dropped["outcome rows for unknown prompts"] += 1
            continue
        outcomes.setdefault(pid, {})[row["model"]] = (score, cost)
        model_order.setdefault(row["model"], None)
    models = list(model_order)
    keep = [pid for pid in prompts if len(outcomes.get(pid, {})) == len(models)]
    dropped["prompts missing some model's outcome"] = len(prompts) - len(keep)
    dropped = {why: n for why, n in dropped.items() if n}
    if not keep:
        raise DataFormatError(f"{folder}: no prompt has an outcome for every model {models}")
    scores = np.array([[outcomes[pid][m][0] for m in models] for pid in keep])
    costs = np.array([[outcomes[pid][m][1] for m in models] for pid in keep])
    return RoutingTable(folder.name, keep, [prompts[p][0] for p in keep], [prompts[p][1] for p in keep],
                        [prompts[p][2] for p in keep], models, model_info, scores, costs,
                        cost_unit.strip(), dropped)

"""Routing tables: prompts, and every model's score and cost on each, read from a folder.

Layout (see the shared data README): prompts.csv (prompt_id, task, split, prompt), outcomes.csv
(prompt_id, model, score, cost), models.json ({"cost_unit", "models": {name: {input_price_per_mtok, ...}}}).
Parquet files with the same stems are read too. Prompts lacking an outcome for some model are dropped and
counted in `RoutingTable.dropped`.
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

    def model_cards(self) -> list[Model]:
        """Model cards with this table's prices (per Mtok in models.json, per token on the card)."""
        cards = []
        for name in self.models:
            info = self.model_info.get(name, {})
            try:
                cards.append(Model(name, input_cost_per_token=info["input_price_per_mtok"] / 1e6,
                                   output_cost_per_token=info["output_price_per_mtok"] / 1e6,
                                   description=info.get("description", ""), context_window=None))
            except KeyError as missing:
                raise DataFormatError(f"{self.name}: models.json lacks {missing} for model {name!r}") from None
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
        return f"{self.name}: {len(self)} prompts x {len(self.models)} models (dropped: {dropped})"


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

    prompts: dict[str, tuple[str, str, str]] = {}
    for row in _rows(folder, "prompts", PROMPT_COLUMNS):
        prompts[str(row["prompt_id"])] = (row["prompt"] or "", row["task"] or "", row["split"] or "")
    outcomes: dict[str, dict[str, tuple[float, float]]] = {}
    model_order: dict[str, None] = dict.fromkeys(model_info)
    dropped = {"outcome rows for unknown prompts": 0, "outcome rows with invalid score or cost": 0}
    for line, row in enumerate(_rows(folder, "outcomes", OUTCOME_COLUMNS), start=2):
        where = f"outcomes line {line}"
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
                        meta.get("cost_unit", "usd"), dropped)

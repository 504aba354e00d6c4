"""Crafted files: a budget ledger and a routing table's models.json that are not what they claim are refused with
the library's own error naming the field or file, never a RecursionError, OverflowError or bare ValueError."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from bandit_router.budget import Budget
from bandit_router.errors import DataFormatError, StateFormatError
from bandit_router.evaluation.table import load_table

from ..evaluation.conftest import write_table

BIG = 10**400  # a JSON integer beyond float range
DEEP = 100_000  # nesting far past the recursion limit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _budget(clock: Clock) -> Budget:
    return Budget(1.0, period=100.0, key_limit=0.5, clock=clock)


def _saved_ledger(path: Path, clock: Clock) -> dict:
    """A ledger with a key account, ratios seen and a cheapest cost, as `Budget.save` writes it."""
    budget = _budget(clock)
    budget.pace(["a", "b"], np.array([0.5, 0.9]), np.array([0.001, 0.01]), key="ann")
    budget.settle(budget.reserve(0.2, "ann"), 0.15)
    budget.save(path)
    return json.loads(path.read_text())


def _set(*keys: str | int, value: object) -> Callable[[dict], str]:
    """A crafting that sets ledger[keys...] to `value` (JSON with NaN and Infinity tokens allowed)."""
    def craft(ledger: dict) -> str:
        target = ledger
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
        return json.dumps(ledger)
    return craft


def _text(text: str) -> Callable[[dict], str]:
    return lambda ledger: text


NAN, INF = float("nan"), float("inf")
CRAFTED = {
    "deep arrays": (_text('{"seen_ratio": ' + "[" * DEEP + "]" * DEEP + "}"), "nests deeper than"),
    "deep objects": (_text('{"a": ' * DEEP + "0" + "}" * DEEP), "nests deeper than"),
    "huge count": (_set("cheapest", 1, value=BIG), r"cheapest\[1\]"),
    "huge sum": (_set("cheapest", 0, value=BIG), r"cheapest\[0\]"),
    "huge ratio": (_set("seen_ratio", 1, value=BIG), r"seen_ratio\[1\]"),
    "huge spent": (_set("accounts", "", "spent", value=BIG), r"accounts\[''\]\.spent"),
    "huge window": (_set("accounts", "ann", "window", value=BIG), r"accounts\['ann'\]\.window"),
    "huge origin": (_set("origin", value=-BIG), "origin"),
    "ratio strings nan": (_set("seen_ratio", value=["nan", "nan"]), r"seen_ratio\[0\]"),
    "ratio NaN": (_set("seen_ratio", value=[NAN, NAN]), r"seen_ratio\[0\]"),
    "ratio inf": (_set("seen_ratio", value=[1.0, INF]), r"seen_ratio\[1\]"),
    "ratio negative": (_set("seen_ratio", value=[-1.0, 2.0]), r"seen_ratio\[0\]"),
    "ratio zero low": (_set("seen_ratio", value=[0.0, 2.0]), "seen_ratio must be null or"),
    "ratio low above high": (_set("seen_ratio", value=[3.0, 1.0]), "seen_ratio must be null or"),
    "ratio one value": (_set("seen_ratio", value=[1.0]), "seen_ratio must be null or"),
    "ratio three values": (_set("seen_ratio", value=[1.0, 2.0, 3.0]), "seen_ratio must be null or"),
    "ratio a string": (_set("seen_ratio", value="1,2"), "seen_ratio must be null or"),
    "cheapest NaN": (_set("cheapest", value=[NAN, 1]), r"cheapest\[0\]"),
    "cheapest inf": (_set("cheapest", value=[INF, 1]), r"cheapest\[0\]"),
    "cheapest negative sum": (_set("cheapest", value=[-0.5, 1]), r"cheapest\[0\]"),
    "cheapest negative count": (_set("cheapest", value=[0.5, -1]), r"cheapest\[1\]"),
    "cheapest fractional count": (_set("cheapest", value=[0.5, 1.5]), r"cheapest\[1\]"),
    "cheapest boolean count": (_set("cheapest", value=[0.5, True]), r"cheapest\[1\]"),
    "cheapest string sum": (_set("cheapest", value=["0.5", 1]), r"cheapest\[0\]"),
    "cheapest string count": (_set("cheapest", value=[0.5, "1"]), r"cheapest\[1\]"),
    "cheapest one value": (_set("cheapest", value=[0.5]), "cheapest must be"),
    "cheapest null": (_set("cheapest", value=None), "cheapest must be"),
    "spent a string": (_set("accounts", "", "spent", value="0.5"), r"accounts\[''\]\.spent"),
    "queries a string": (_set("accounts", "ann", "queries", value="3"), r"accounts\['ann'\]\.queries"),
    "calls fractional": (_set("accounts", "ann", "calls", value=2.5), r"accounts\['ann'\]\.calls"),
    "window boolean": (_set("accounts", "", "window", value=True), r"accounts\[''\]\.window"),
    "total NaN": (_set("accounts", "ann", "total", value=NAN), r"accounts\['ann'\]\.total"),
    "spent -inf": (_set("accounts", "", "spent", value=-INF), r"accounts\[''\]\.spent"),
    "bin missing": (lambda ledger: (ledger["accounts"][""].pop("bin"), json.dumps(ledger))[1], r"accounts\[''\]\.bin"),
    "account a list": (_set("accounts", "ann", value=[1, 2]), r"accounts\['ann'\] must be an object"),
    "origin -inf": (_set("origin", value=-INF), "origin"),
    "origin a string": (_set("origin", value="950"), "origin"),
    "period a string": (_set("period", value="100"), "period"),
}


@pytest.mark.parametrize("craft, match", CRAFTED.values(), ids=CRAFTED.keys())
def test_a_crafted_ledger_is_a_state_format_error_naming_the_field(tmp_path, craft, match):
    path, clock = tmp_path / "ledger.json", Clock()
    path.write_text(craft(_saved_ledger(path, clock)))
    budget = _budget(clock)
    with pytest.raises(StateFormatError, match=match) as refused:  # not RecursionError, OverflowError, ValueError
        budget.restore(path)
    assert type(refused.value) is StateFormatError and str(path) in str(refused.value)
    assert budget.remaining() == 1.0 and budget.remaining("ann") == 0.5  # the budget is left as it was


@pytest.mark.parametrize("craft", [
    lambda ledger: json.dumps(ledger),
    _set("seen_ratio", value=None),
    _set("seen_ratio", value=[2, 2]),  # integers where numbers go, low == high
    _set("accounts", "", "spent", value=0),
    _set("accounts", "ann", "description", value="[" * DEEP),  # brackets in a string do not nest (unknown field)
], ids=["as saved", "no ratio seen", "integer ratios", "integer spent", "brackets in a string"])
def test_a_valid_ledger_still_restores(tmp_path, craft):
    path, clock = tmp_path / "ledger.json", Clock()
    path.write_text(craft(_saved_ledger(path, clock)))
    budget = _budget(clock)
    budget.restore(path)
    assert budget.spent("ann") == pytest.approx(0.15) and budget.remaining("ann") == pytest.approx(0.35)
    assert budget.pace(["a", "b"], np.array([0.5, 0.9]), np.array([0.001, 0.01]))  # pacing works on what it read


def test_the_restored_pacer_state_is_the_saved_one(tmp_path):
    path, clock = tmp_path / "ledger.json", Clock()
    saved = _saved_ledger(path, clock)
    budget = _budget(clock)
    budget.restore(path)
    assert budget._seen_ratio == saved["seen_ratio"] and budget._cheapest == saved["cheapest"]
    assert isinstance(budget._cheapest[1], int)


def test_a_ledger_full_of_quotes_is_refused_in_linear_time(tmp_path):
    """The nesting check skips strings in one pass (a pattern restarting at every quote takes minutes here)."""
    path = tmp_path / "ledger.json"
    path.write_text('"' + '\\"' * 200_000)
    start = time.perf_counter()
    with pytest.raises(StateFormatError, match="budget ledger"):
        _budget(Clock()).restore(path)
    assert time.perf_counter() - start < 5.0


# -- routing tables -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("models", [
    '{"models": ' + "[" * DEEP + "]" * DEEP + "}",
    '{"models": ' + '{"a": ' * DEEP + "{}" + "}" * DEEP + "}",
], ids=["deep arrays", "deep objects"])
def test_a_deeply_nested_models_json_is_a_data_format_error_naming_the_file(tmp_path, models):
    folder = write_table(tmp_path / "table", n=6)
    (folder / "models.json").write_text(models)
    with pytest.raises(DataFormatError, match=re.escape(str(folder / "models.json")) + ".*nests deeper"):
        load_table(folder)


def test_a_models_json_full_of_quotes_is_refused_in_linear_time(tmp_path):
    folder = write_table(tmp_path / "table", n=6)
    (folder / "models.json").write_text('"' + '\\"' * 200_000)
    start = time.perf_counter()
    with pytest.raises(DataFormatError, match="models.json must be JSON"):
        load_table(folder)
    assert time.perf_counter() - start < 5.0


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32-le"])
def test_models_json_brackets_in_strings_and_its_text_encoding_are_read_as_before(tmp_path, encoding):
    folder = write_table(tmp_path / "table", n=6)
    meta = json.loads((folder / "models.json").read_text())
    meta["models"]["small"]["description"] = "[{" * DEEP
    (folder / "models.json").write_bytes(json.dumps(meta, ensure_ascii=False).encode(encoding))
    table = load_table(folder)
    assert table.model_info["small"]["description"] == "[{" * DEEP and len(table) == 6


def test_a_price_beyond_float_range_is_a_data_format_error(tmp_path):
    folder = write_table(tmp_path / "table", n=6)
    meta = json.loads((folder / "models.json").read_text())
    meta["models"]["small"]["input_price_per_mtok"] = BIG
    (folder / "models.json").write_text(json.dumps(meta))
    with pytest.raises(DataFormatError, match="models.json model 'small'.*input_price_per_mtok.*not finite"):
        load_table(folder).model_cards()


@pytest.mark.parametrize("stats, problem", [
    ({"m": {"A": np.eye(2), "b": np.ones(3), "n": np.array(1)}}, "has shapes A"),
    ({"m": {"A": np.eye(2), "b": np.array([np.nan, 1.0]), "n": np.array(1)}}, "holds NaN, infinite"),
    ({"m": {"A": np.eye(2) * np.inf, "b": np.ones(2), "n": np.array(1)}}, "holds NaN, infinite"),
    ({"m": {"A": np.eye(2), "b": np.ones(2), "n": np.array(-5)}}, "holds n = -5"),
    ({"m": {"A": np.eye(2), "b": np.ones(2), "n": np.array(1.5)}}, "holds n = 1.5"),
])
def test_shared_state_in_redis_is_checked_like_sqlite_rows(stats, problem) -> None:
    """What RedisStateStore reads (decode_stats) is refused as SQLite's damaged rows are, not merged into a policy."""
    from bandit_router.errors import StateFormatError
    from bandit_router.store.base import decode_stats, encode_stats

    with pytest.raises(StateFormatError, match=f"model 'm' {problem}"):
        decode_stats(encode_stats(stats))
    good = {"m": {"A": np.eye(2), "b": np.ones(2), "n": np.array(3)}}
    assert int(decode_stats(encode_stats(good))["m"]["n"]) == 3

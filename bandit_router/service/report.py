"""What the router has been doing, from its decision log: traffic share per model over time, spend, ratings and
the dial, as PNG plots and a markdown table (`bandit-router report decisions.db --out DIR`)."""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataFormatError

__all__ = ["write_report"]


@dataclass
class _Log:
    """The decision log as columns."""

    at: np.ndarray  # created_at, Unix seconds
    model: np.ndarray  # model that answered (str)
    dial: np.ndarray
    cost: np.ndarray  # USD, NaN when the call was not served
    score: np.ndarray  # NaN when unrated
    status: np.ndarray
    failures: dict[str, int]  # failed calls per model: those that ended a decision and those it fell back from

    @classmethod
    def read(cls, path: str | Path) -> "_Log":
        import sqlite3

        if not Path(path).is_file():
            raise ConfigError(f"decision log {str(path)!r} does not exist")
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
                rows = conn.execute("SELECT created_at, model, cost_weight, cost, score, status, failed FROM "
                                    "decisions ORDER BY created_at, rowid").fetchall()
        except sqlite3.DatabaseError as error:
            raise DataFormatError(f"{str(path)!r} is not a bandit-router decision log: {error}") from None
        if not rows:
            raise DataFormatError(f"decision log {str(path)!r} holds no decisions yet")
        at, model, dial, cost, score, status, failed = zip(*rows)
        failures = Counter(chosen for chosen, ended in zip(model, status) if ended == "failed")
        failures.update(m for before in failed for m in json.loads(before or "[]"))
        nan = lambda values: np.array([math.nan if v is None else v for v in values], dtype=float)  # noqa: E731
        return cls(np.array(at, dtype=float), np.array(model), np.array(dial, dtype=float), nan(cost), nan(score),
                   np.array(status), dict(failures))

    @property
    def models(self) -> list[str]:
        return sorted(set(self.model))


def _bins(at: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(bin index of each decision, bin start times) over the log's time span."""
    start, end = at.min(), at.max()
    width = max((end - start) / count, 1e-9)
    index = np.minimum(((at - start) / width).astype(int), count - 1)
    return index, start + width * np.arange(count)


def _times(starts: np.ndarray) -> list[Any]:
    from datetime import datetime, timezone

    return [datetime.fromtimestamp(t, tz=timezone.utc) for t in starts]


def _plot(path: Path, title: str, ylabel: str, draw) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    draw(ax)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("time (UTC)")
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(mdates.AutoDateLocator()))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _mean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else math.nan


def _fmt(value: float, digits: int = 3) -> str:
    return "-" if value != value else f"{value:.{digits}f}"


def write_report(log_path: str | Path, out: str | Path, bins: int = 24) -> dict[str, Path]:
    """Write traffic.png, spend.png, ratings.png, dial.png and report.md into `out`; returns their paths."""
    if isinstance(bins, bool) or not isinstance(bins, int) or not 1 <= bins <= 1000:
        raise ConfigError(f"bins must be an integer in [1, 1000], got {bins!r}")
    log = _Log.read(log_path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    index, starts = _bins(log.at, bins)
    when = _times(starts)
    models = log.models
    counts = np.array([[np.sum((index == b) & (log.model == m)) for b in range(bins)] for m in models], dtype=float)
    totals = counts.sum(axis=0)
    share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    paths = {name: out / f"{name}.png" for name in ("traffic", "spend", "ratings", "dial")}

    _plot(paths["traffic"], "Traffic share per model", "share of decisions",
          lambda ax: ax.stackplot(when, share, labels=models, alpha=0.85))

    def spend(ax: Any) -> None:
        for m in models:
            cost = np.where((log.model == m) & ~np.isnan(log.cost), log.cost, 0.0)
            ax.plot(_times(log.at), np.cumsum(cost), label=m)
        ax.plot(_times(log.at), np.cumsum(np.nan_to_num(log.cost)), color="black", lw=2, label="all models")

    _plot(paths["spend"], "Cumulative spend", "USD", spend)

    def ratings(ax: Any) -> None:
        for m in models:
            means = [_mean(log.score[(index == b) & (log.model == m)]) for b in range(bins)]
            ax.plot(when, means, marker="o", ms=3, label=m)
        ax.set_ylim(-0.05, 1.05)

    _plot(paths["ratings"], "Mean rating per model", "score in [0, 1]", ratings)
    _plot(paths["dial"], "The dial (cost_weight) of the requests", "mean cost_weight",
          lambda ax: ax.plot(when, [_mean(log.dial[index == b]) for b in range(bins)], marker="o", ms=3))

    rows = []
    for m in models:
        mine = log.model == m
        rated = mine & ~np.isnan(log.score)
        rows.append(f"| {m} | {mine.sum()} | {mine.mean():.1%} | {log.failures.get(m, 0)} | "
                    f"{np.nansum(log.cost[mine]):.6g} | {_fmt(_mean(log.cost[mine]), 6)} | {rated.sum()} | "
                    f"{_fmt(_mean(log.score[mine]))} |")
    first, last = (time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) for t in (log.at.min(), log.at.max()))
    rated = ~np.isnan(log.score)
    used = sorted(set(log.dial.round(3)))
    dials = ", ".join(f"{d:g}" for d in used) if len(used) <= 8 else f"{used[0]:g} to {used[-1]:g} ({len(used)} values)"
    text = "\n".join([
        f"# Router report: {Path(log_path).name}",
        "",
        f"{len(log.at)} decisions from {first} to {last} UTC; spend ${np.nansum(log.cost):.6g}; "
        f"{rated.sum()} rated ({rated.mean():.1%}), mean rating {_fmt(_mean(log.score))}; dial values used: {dials}.",
        "",
        "| model | decisions | share | failed calls | spend (USD) | mean cost (USD) | rated | mean rating |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        "![traffic share](traffic.png)",
        "![spend](spend.png)",
        "![ratings](ratings.png)",
        "![dial](dial.png)",
        "",
    ])
    paths["report"] = out / "report.md"
    paths["report"].write_text(text)
    return paths


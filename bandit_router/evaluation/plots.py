"""PNG plots of a sweep (matplotlib, Agg backend): the quality-cost frontier and cumulative regret over time."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

__all__ = ["plot_frontier", "plot_regret", "plot_learning"]

Points = tuple[np.ndarray, np.ndarray]  # (mean costs, mean scores), one per dial


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_frontier(path: str | Path, title: str, policies: Mapping[str, Points],
                  singles: Mapping[str, tuple[float, float]], oracle: Points, hull: Points,
                  cost_unit: str = "usd") -> None:
    """Each policy's (cost, score) points across dials as a line, single models as stars, the oracle dashed and
    the single models' upper concave hull (`hull`: its vertices) in grey, held flat beyond its ends."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for label, (costs, scores) in policies.items():
        ax.plot(costs, scores, marker="o", markersize=4, label=label)
    ax.plot(*oracle, "k--", marker=".", label="oracle")
    all_costs = [c for c, _ in singles.values()] + [float(np.min(c)) for c, _ in policies.values() if len(c)]
    hull_c, hull_s = np.asarray(hull[0], float), np.asarray(hull[1], float)
    lo, hi = min(min(all_costs), hull_c[0]), max(max(all_costs), hull_c[-1])
    ax.plot([lo, *hull_c, hi * 1.5], [hull_s[0], *hull_s, hull_s[-1]], color="grey", linewidth=2, alpha=0.5,
            label="single-model hull (fixed splits)")
    for name, (cost, score) in singles.items():
        ax.plot([cost], [score], marker="*", markersize=12, linestyle="none", color="grey")
        ax.annotate(name, (cost, score), textcoords="offset points", xytext=(5, -10), fontsize=7, color="dimgrey")
    ax.set_xscale("log")
    ax.set_xlabel(f"mean cost per prompt ({cost_unit}, log scale)")
    ax.set_ylabel("mean score")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_regret(path: str | Path, title: str, curves: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    """Cumulative regret over prompts against the oracle (left) and the best fixed model (right), per policy."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, key, name in zip(axes, ("oracle", "best_fixed"), ("the oracle", "the best fixed model")):
        for label, curve in curves.items():
            ax.plot(np.arange(1, len(curve[key]) + 1), curve[key], label=label)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xlabel("prompts routed")
        ax.set_ylabel("cumulative regret (utility)")
        ax.set_title(f"against {name}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_learning(path: str | Path, title: str, curves: Mapping[str, Mapping[float, np.ndarray]]) -> None:
    """Hull gain of the running mean against prompts routed, one panel per policy, one line per dial."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, max(1, len(curves)), figsize=(4.5 * max(1, len(curves)), 4), squeeze=False,
                             sharey=True)
    for ax, (policy, by_dial) in zip(axes[0], curves.items()):
        for dial, curve in by_dial.items():
            start = min(50, len(curve) - 1)  # the first few dozen prompts are noise
            ax.plot(np.arange(start + 1, len(curve) + 1), curve[start:], label=f"w={dial:g}")
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xlabel("prompts routed")
        ax.set_title(policy, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("hull gain of the running mean")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

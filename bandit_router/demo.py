"""`bandit-router demo`: replay the bundled llmrouter-9 set through the real Router at several dial values.

Prompts arrive in random order; the router sees only the chosen model's score (bandit feedback). The demo prints
mean score, cost and hull gain (score above the best fixed split between single models at that cost) per dial
beside every single model, and writes a PNG of the quality-vs-cost points.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from .encoders import sentence_encoder
from .evaluation import bundled_table_path, load_table, lookup_encoder, replay, table_vectors
from .evaluation.metrics import frontier
from .evaluation.report import run_hull_gain
from .router import Router

__all__ = ["DEMO_DIALS", "run_demo"]

DEMO_DIALS = (0.0, 0.03, 0.06, 0.1, 0.2, 0.5)


def run_demo(seed: int = 0, out: str | Path = "demo-output", dials: Sequence[float] = DEMO_DIALS,
             policy: str = "shrunk-linucb", policy_settings: Mapping[str, Any] | None = None) -> list[dict[str, float]]:
    """Run the demo, print its table, write `out`/demo.png and `out`/demo.md; returns the table rows."""
    from tqdm import tqdm

    table = load_table(bundled_table_path())
    encoder = sentence_encoder()
    print(f"{table.summary()}; encoding prompts with {encoder.name} (cached on disk after the first run)")
    vectors = table_vectors(table, encoder, progress=True)
    best = table.best
    best_score, best_cost = table.scores[:, best].mean(), table.costs[:, best].mean()
    rows = []
    with tqdm(total=len(table) * len(dials), desc=f"replaying with {policy}", unit="prompt") as bar:
        for dial in dials:
            router = Router(table.model_cards(), policy=policy, policy_settings=policy_settings,
                            encoder=lookup_encoder(table, vectors, encoder.name), seed=seed)
            run = replay(table, router, dial, seed=seed, progress=bar.update)
            rows.append({"cost_weight": dial, "mean_score": run.mean_score, "mean_cost": run.mean_cost,
                         "score_pct": 100 * run.mean_score / best_score, "cost_pct": 100 * run.mean_cost / best_cost,
                         "hull_gain": run_hull_gain(table, run)})
    lines = [f"Router ({policy}, seed {seed}) on {table.name}, bandit feedback only; "
             f"best single model: {table.models[best]} {best_score:.3f} @ ${best_cost:.2e}/query", "",
             "| cost_weight | mean score | mean cost (USD) | score % of best | cost % of best | hull gain |",
             "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['cost_weight']:g} | {r['mean_score']:.3f} | {r['mean_cost']:.2e} | {r['score_pct']:.1f}% | "
              f"{r['cost_pct']:.1f}% | {r['hull_gain']:+.3f} |" for r in rows]
    lines += ["", "| single model | mean score | mean cost (USD) |", "| --- | ---: | ---: |"]
    lines += [f"| {m} | {table.scores[:, k].mean():.3f} | {table.costs[:, k].mean():.2e} |"
              for k, m in enumerate(table.models)]
    report = "\n".join(lines)
    print(report)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "demo.md").write_text(report + "\n")
    _plot(table, rows, out / "demo.png", policy)
    print(f"wrote {out / 'demo.md'} and {out / 'demo.png'}")
    return rows


def _plot(table, rows: list[dict[str, float]], path: Path, policy: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    costs, scores = table.costs.mean(axis=0), table.scores.mean(axis=0)
    hull_c, hull_s = frontier(costs, scores)
    ax.plot(hull_c, hull_s, color="grey", linewidth=2, alpha=0.4, label="single-model hull (fixed splits)")
    ax.scatter(costs, scores, color="grey", label="single models")
    for name, c, s in zip(table.models, costs, scores):
        ax.annotate(name, (c, s), fontsize=7, xytext=(5, -3), textcoords="offset points", color="dimgrey")
    ax.plot([r["mean_cost"] for r in rows], [r["mean_score"] for r in rows], "o-", color="tab:blue",
            label=f"router ({policy}), one point per cost_weight")
    for rank, r in enumerate(sorted(rows, key=lambda r: r["mean_cost"])):  # neighbours' labels above and below
        ax.annotate(f"{r['cost_weight']:g}", (r["mean_cost"], r["mean_score"]), fontsize=7, color="tab:blue",
                    xytext=(0, 7 if rank % 2 else -12), textcoords="offset points", ha="center")
    ax.set_xlim(right=costs.max() * 1.45)  # room for the names of the dearest models
    ax.set_xlabel("mean cost per query (USD)")
    ax.set_ylabel("mean score")
    ax.set_title(f"{table.name}: quality vs cost, bandit feedback only")
    ax.grid(alpha=0.3)
    ax.legend(loc="center right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

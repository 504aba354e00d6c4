"""The learned cost model against price x fixed length: prediction error, and budgets replayed with each.

Run: PYTHONPATH=. LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/cost_model_bench.py
     [--sections error,budget] [--sets llmrouter-9,routellm-mmlu-2,routerarena-2] [--seeds 0,1,2]

1. Error (routerarena-2, real per-query costs): per seed, the prompts are shuffled; each model settles its calls
   on the first 200 (the router's CostModel learns from their real costs, nothing else), then predicts the cost of
   its call on each remaining prompt. Mean absolute percentage error per call of the learned model, of the price x
   (estimated prompt tokens + 256 output tokens) estimate (the router's former rule, = the cost model before any
   call), and of the learned model without prompt-length buckets (one mean per model).
2. Budget: each shared set replayed through the Router (linucb, dial 0, one seed per row) with a knapsack-paced
   Budget for the whole stream (period = the table's prompts, in queries) of 40% of the best single model's mean
   cost per request x the prompts, once with the learned cost model (the default) and once with price-based costs
   (a cost model that never learns). Spend / budget and mean score per run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from bandit_router.budget import Budget
from bandit_router.costs import CostModel
from bandit_router.encoders import sentence_encoder
from bandit_router.evaluation.embeddings import lookup_encoder, table_vectors
from bandit_router.evaluation.replay import replay
from bandit_router.evaluation.table import load_table
from bandit_router.models import estimate_tokens
from bandit_router.router import Router

ROOT = Path(__file__).resolve().parents[1]
DATA = Path("/work/shared/data")
ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
SETTLED = 200
BUDGET_SHARE = 0.4


class PriceCosts(CostModel):
    """The former rule: list price x (prompt tokens + expected_output_tokens), never updated."""

    def observe(self, name: str, prompt_tokens: int, cost: float) -> None:
        return None


def mape(predicted: np.ndarray, real: np.ndarray) -> float:
    return float(np.mean(np.abs(predicted - real) / real))


def error_section(seeds: list[int]) -> list[str]:
    tb = load_table(DATA / "routerarena-2", invalid_rows="drop")
    cards = tb.model_cards()
    tokens = np.array([estimate_tokens(p) for p in tb.prompts])
    lines = [f"routerarena-2 ({tb.summary()}): each model settles {SETTLED} calls (its real cost on the first "
             f"{SETTLED} shuffled prompts), then its cost is predicted on the other {len(tb) - SETTLED}. "
             "Mean absolute percentage error per call; seeds " + ", ".join(map(str, seeds)) + ".", "",
             "| model | price x (prompt + 256 output tokens) | learned cost model | learned, no length buckets | "
             "learned / price |", "|---|---:|---:|---:|---:|"]
    for k, card in enumerate(cards):
        errors = {"price": [], "learned": [], "flat": []}
        for seed in seeds:
            order = np.random.default_rng(seed).permutation(len(tb))
            seen, rest = order[:SETTLED], order[SETTLED:]
            learned, flat = CostModel(cards), CostModel(cards, bucket_weight=1e12)
            price = CostModel(cards)  # before any settled call: the price x fixed-length estimate
            for i in seen:
                learned.observe(card.name, int(tokens[i]), float(tb.costs[i, k]))
                flat.observe(card.name, int(tokens[i]), float(tb.costs[i, k]))
            real = tb.costs[rest, k]
            for label, model in (("price", price), ("learned", learned), ("flat", flat)):
                errors[label].append(mape(np.array([model.predict([card.name], int(tokens[i]))[0] for i in rest]),
                                          real))
        mean = {label: np.mean(values) for label, values in errors.items()}
        lines.append(f"| {card.name} | {mean['price']:.3f} | {mean['learned']:.3f} | {mean['flat']:.3f} | "
                     f"{mean['learned'] / mean['price']:.3f} |")
        print(lines[-1], flush=True)
    return lines


def budget_section(sets: list[str], seeds: list[int]) -> list[str]:
    lines = [f"Budget = {BUDGET_SHARE:.0%} of the best single model's mean cost per request x the table's prompts, "
             "for the whole stream (period = the prompts, in queries; knapsack pacer); linucb at dial 0.", "",
             "| set | costs | seed | budget | spend | spend / budget | mean score | unanswered | seconds |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    encoder = sentence_encoder(ENCODER)
    for name in sets:
        tb = load_table(DATA / name, invalid_rows="drop")
        enc = lookup_encoder(tb, table_vectors(tb, encoder), ENCODER)
        best = int(np.argmax(tb.scores.mean(axis=0)))
        limit = BUDGET_SHARE * tb.costs[:, best].mean() * len(tb)
        for seed in seeds:
            for label in ("learned", "price-based"):
                budget = Budget(limit, period=len(tb), unit="queries")
                router = Router(tb.model_cards(), encoder=enc, seed=seed, budget=budget)
                if label == "price-based":
                    costs = PriceCosts(tb.model_cards(), router.limits.expected_output_tokens)
                    router.costs = router.gate.costs = router.caller.costs = costs  # every holder
                started = time.time()
                run = replay(tb, router, 0.0, seed=seed)
                spend = float(run.cost.sum())
                lines.append(f"| {name} | {label} | {seed} | {limit:.4g} | {spend:.4g} | {spend / limit:.4f} | "
                             f"{run.mean_score:.4f} | {(run.chosen < 0).sum()} | {time.time() - started:.0f} |")
                print(lines[-1], flush=True)
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="error,budget", help="comma-separated: error, budget")
    parser.add_argument("--sets", default="llmrouter-9,routellm-mmlu-2,routerarena-2", help="budget section sets")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cost_model.md"))
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    sections = args.sections.split(",")
    out = ["Command: `PYTHONPATH=. LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 .venv/bin/python "
           f"benchmarks/cost_model_bench.py --sections {args.sections} --sets {args.sets} --seeds {args.seeds}`", ""]
    if "error" in sections:
        out += ["#### Cost prediction error after 200 settled calls per model", ""] + error_section(seeds) + [""]
    if "budget" in sections:
        out += ["#### Budgets replayed with learned and with price-based costs", ""] + budget_section(
            args.sets.split(","), seeds) + [""]
    Path(args.out).write_text("\n".join(out) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

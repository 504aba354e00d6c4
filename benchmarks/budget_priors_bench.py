"""Budgets, priors and new models on llmrouter-9: writes docs/budgets_priors_results.md.

Run: LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/budget_priors_bench.py [--quick]

1. Budget: a replay of the whole table (6,108 prompts, linucb, dial 0, seed 0) with a budget of 30% of the best
   single model's total cost over the stream, paced by the knapsack and by the per-query split, against no budget.
2. Warm start: linucb routes the test split (500 prompts, bandit feedback) cold, or after a full-information prior
   from the train split; regret = oracle score - chosen score, summed over the 500 decisions.
3. New model: the router learns 8 models from the train split (full information); the 9th is added at run time
   bare, with a prior mixed from the models its description or its quiz answers resemble, or (shared-linucb) with
   its features; then it routes the 500 test prompts.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

from bandit_router.budget import Budget
from bandit_router.encoders import sentence_encoder
from bandit_router.evaluation.embeddings import lookup_encoder, table_vectors
from bandit_router.evaluation.replay import replay
from bandit_router.evaluation.table import bundled_table_path, load_table
from bandit_router.policies.shared import SharedLinUCB, model_features
from bandit_router.priors import MIX_STRENGTH, description_mix, mix_prior, onboard, table_prior
from bandit_router.router import Router

ROOT = Path(__file__).resolve().parents[1]
ENCODER = "sentence-transformers/all-MiniLM-L6-v2"


def size_of(info: dict) -> float | None:
    match = re.fullmatch(r"([\d.]+)B", str(info.get("size", "")))
    return float(match.group(1)) if match else None


def budget_section(tb, enc, seeds) -> list[str]:
    totals = tb.costs.sum(axis=0)
    best = int(np.argmax(tb.scores.mean(axis=0)))
    limit = 0.3 * totals[best]
    lines = [f"Budget: 30% of the best single model's ({tb.models[best]}) total cost ${totals[best]:.4f} = "
             f"${limit:.4f} for the whole stream of {len(tb)} prompts (period = {len(tb)} queries).", "",
             "| pacing | seed | mean score | spend (USD) | spend / budget | ledger total <= budget | "
             "unanswered | ledger - sum of table costs | seconds |", "|---|---|---|---|---|---|---|---|---|"]
    for seed in seeds:
        for pacer in (None, "knapsack", "split"):
            budget = None if pacer is None else Budget(limit, period=len(tb), unit="queries", pacer=pacer)
            router = Router(tb.model_cards(), encoder=enc, seed=seed, budget=budget)
            start = time.time()
            run = replay(tb, router, 0.0, seed=seed)
            spend = run.cost.sum()
            gap = "n/a" if budget is None else f"{budget.total_spent() - spend:.2e}"
            within = "n/a" if budget is None else str(budget.total_spent() <= limit)  # spend only grows
            lines.append(f"| {pacer or 'no budget'} | {seed} | {run.mean_score:.4f} | {spend:.4f} | {spend / limit:.4f} | "
                         f"{within} | {(run.chosen < 0).sum()} | {gap} | "
                         f"{time.time() - start:.0f} |")
            print(lines[-1], flush=True)
    return lines


def regret(run, tb_test) -> float:
    return float((tb_test.scores[run.order].max(axis=1) - run.score).sum())


def warm_section(tb, enc, seeds) -> list[str]:
    train = np.array([s == "train" for s in tb.splits])
    tb_train, tb_test = tb.subset(train), tb.subset(~train)
    lines = [f"Test split: {len(tb_test)} prompts routed with bandit feedback (linucb, dial 0); warm starts learn "
             f"every model's score on the {len(tb_train)} train prompts. Regret = sum of (oracle score - chosen score).",
             "", "| start | prior strength | mean regret (seeds " + ",".join(map(str, seeds)) + ") | per seed | "
             "mean score |", "|---|---|---|---|---|"]
    for label, strength in (("cold", None), ("warm", 1.0), ("warm", 0.1)):
        regrets, scores = [], []
        for seed in seeds:
            router = Router(tb.model_cards(), encoder=enc, seed=seed)
            if strength is not None:
                table_prior(router, tb_train.prompts, tb_train.scores, tb_train.models, strength=strength)
            run = replay(tb_test, router, 0.0, seed=seed)
            regrets.append(regret(run, tb_test))
            scores.append(run.mean_score)
        lines.append(f"| {label} | {strength or '-'} | {np.mean(regrets):.1f} | "
                     f"{', '.join(f'{r:.1f}' for r in regrets)} | {np.mean(scores):.4f} |")
        print(lines[-1], flush=True)
    return lines


def held_out_section(tb, enc, seeds, strength: float, validation: bool = False, quiz_size: int = 50) -> list[str]:
    train = np.array([s == "train" for s in tb.splits])
    tb_train, tb_test = tb.subset(train), tb.subset(~train)
    if validation:  # choose settings without the test split: 500 train prompts stand in for it
        stream = np.zeros(len(tb_train), dtype=bool)
        stream[np.random.default_rng(99).choice(len(tb_train), len(tb_test), replace=False)] = True
        tb_train, tb_test = tb_train.subset(~stream), tb_train.subset(stream)
    text_encoder = sentence_encoder()
    cards = {c.name: c for c in tb.model_cards()}
    features = {m: model_features(cards[m], text_encoder, size_of(tb.model_info[m])) for m in tb.models}
    modes = ["bare", "description", "quiz", "bare + quiz answers", "shared-linucb features", "shared-linucb bare"]
    lines = [f"The 8 other models learn the {'train split less 500 validation prompts' if validation else 'train split'} "
             f"(full information, strength 1); the held-out 9th is added at run time; then the {len(tb_test)} "
             f"{'validation' if validation else 'test'} prompts are routed (bandit feedback, dial 0, seeds "
             f"{', '.join(map(str, seeds))}). Modes, all with the default policy (linucb) unless named:", "",
             "- bare: `add_model(card)`, nothing known about it.",
             f"- description: `mix_prior(router, name, description_mix(router, name), strength={strength:g})`.",
             f"- quiz: `onboard(router, card, quiz, evaluator, known=...)` on {quiz_size} train prompts drawn per "
             f"seed (the evaluator reads the held-out model's table score; `known` holds the 8 models' scores "
             f"on them), which sets a `quiz_mix` prior of strength {strength:g} and then observes the answers.",
             "- bare + quiz answers: the same quiz answers observed, no prior (the same information as quiz).",
             "- shared-linucb features / bare: shared-linucb (defaults) with `add_model(card, features=...)` "
             "(description embedding, price, size) or bare.", "",
             "Mean score over the test decisions (share = how often the new model was chosen).", "",
             "| held-out model | its mean test score | " + " | ".join(f"{m}: score | share" for m in modes) + " |",
             "|---|---|" + "---|---|" * len(modes)]
    per_seed = {m: [] for m in modes}  # mean score per (held-out model, seed), in that order
    for held in tb.models:
        k = tb.models.index(held)
        others = [m for m in tb.models if m != held]
        cols = [tb.models.index(m) for m in others]
        row = {}
        for mode in modes:
            scores, shares = [], []
            for seed in seeds:
                if mode.startswith("shared"):
                    policy = SharedLinUCB(enc.dim, others, features={m: features[m] for m in others}, seed=seed)
                    router = Router([cards[m] for m in others], policy=policy, encoder=enc, seed=seed)
                else:
                    router = Router([cards[m] for m in others], encoder=enc, seed=seed)
                table_prior(router, tb_train.prompts, tb_train.scores[:, cols], others)
                quiz = np.random.default_rng(seed).choice(len(tb_train), quiz_size, replace=False)
                answers = dict(zip((tb_train.prompts[i] for i in quiz), tb_train.scores[quiz, k]))
                if mode == "description":
                    router.add_model(cards[held])
                    mix_prior(router, held, description_mix(router, held, text_encoder), strength)
                elif mode in ("quiz", "bare + quiz answers"):
                    known = {m: tb_train.scores[quiz, c] for m, c in zip(others, cols)} if mode == "quiz" else None
                    onboard(router, cards[held], [tb_train.prompts[i] for i in quiz], lambda p, _: answers[p], known=known,
                            strength=strength)
                else:
                    router.add_model(cards[held], features=features[held] if mode == "shared-linucb features" else None)
                run = replay(tb_test, router, 0.0, seed=seed)
                scores.append(run.mean_score)
                shares.append(float((run.chosen == k).mean()))
            row[mode] = (np.mean(scores), np.mean(shares))
            per_seed[mode] += scores
        lines.append(f"| {held} | {tb_test.scores[:, k].mean():.3f} | "
                     + " | ".join(f"{row[m][0]:.4f} | {row[m][1]:.2f}" for m in modes) + " |")
        print(lines[-1], flush=True)
    per_model = {m: np.reshape(per_seed[m], (len(tb.models), len(seeds))).mean(axis=1) for m in modes}
    lines.append("| mean over held-out models | | " + " | ".join(f"{per_model[m].mean():.4f} | " for m in modes) + "|")
    for mode in modes[1:4]:
        diff = per_model[mode] - per_model["bare"]
        pairs = np.array(per_seed[mode]) - np.array(per_seed["bare"])
        lines += ["", f"{mode} - bare: mean {diff.mean():+.4f} over the {len(diff)} held-out models "
                      f"({(diff > 0).sum()} of {len(diff)} higher, {(pairs > 0).sum()} of {len(pairs)} (model, seed) "
                      f"runs higher; per model {', '.join(f'{d:+.4f}' for d in diff)})"]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="budget,warm,held", help="comma-separated: budget, warm, held")
    parser.add_argument("--strength", type=float, default=MIX_STRENGTH, help="strength of the new model's mix prior")
    parser.add_argument("--validation", action="store_true",
                        help="section 3 on 500 train prompts (seeded) instead of the test split, to choose settings")
    parser.add_argument("--out", default=str(ROOT / "docs" / "budgets_priors_results.md"))
    args = parser.parse_args(argv)
    tb = load_table(bundled_table_path())
    enc = lookup_encoder(tb, table_vectors(tb, sentence_encoder()), ENCODER)
    out = ["# Budgets, priors and new models: measured results", "",
           "Command: `LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 .venv/bin/python "
           f"benchmarks/budget_priors_bench.py --sections {args.sections} --strength {args.strength:g}"
           f"{' --validation' if args.validation else ''}` (llmrouter-9, {tb.summary()}; "
           "MiniLM prompt vectors from the disk cache).", ""]
    sections = args.sections.split(",")
    if "budget" in sections:
        out += ["## 1. Budget pacing in replay", ""] + budget_section(tb, enc, seeds=[0]) + [""]
    if "warm" in sections:
        out += ["## 2. Warm start from the train split", ""] + warm_section(tb, enc, seeds=[0, 1, 2, 3, 4]) + [""]
    if "held" in sections:
        out += ["## 3. A model added at run time", ""] + held_out_section(tb, enc, [0, 1, 2], args.strength,
                                                                           args.validation) + [""]
    Path(args.out).write_text("\n".join(out) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

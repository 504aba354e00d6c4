"""A budget, a warm start and a model added at run time, on the bundled llmrouter-9 results (offline, no keys).

    python examples/budget_new_model.py [--train 1000] [--stream 300] [--new llama-3.1-8b-instruct]

1. A router over 8 of the 9 models starts from their scores on `--train` stored prompts (`table_prior`).
2. The 9th model arrives: `onboard` scores it on a 30-prompt quiz the 8 took too and starts it like the models
   it answers like (`quiz_mix` + `mix_prior`).
3. `--stream` new prompts are routed under a budget of 30% of what the best single model would cost on them,
   learning from the score of each answer (the stored score stands in for a user's rating).
"""

from __future__ import annotations

import argparse

import numpy as np

from bandit_router import Router
from bandit_router.budget import Budget
from bandit_router.encoders import sentence_encoder
from bandit_router.evaluation.replay import replay
from bandit_router.evaluation.table import bundled_table_path, load_table
from bandit_router.priors import onboard, quiz_mix, table_prior


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=1000, help="stored prompts the first 8 models learn from")
    parser.add_argument("--stream", type=int, default=300, help="new prompts routed under the budget")
    parser.add_argument("--new", default="llama-3.1-8b-instruct", help="the model added at run time")
    args = parser.parse_args()

    table = load_table(bundled_table_path())
    rows = np.random.default_rng(0).permutation(len(table))
    stored, quiz, stream = rows[: args.train], rows[args.train: args.train + 30], rows[-args.stream:]
    cards = {card.name: card for card in table.model_cards()}
    known = [m for m in table.models if m != args.new]
    column = {m: k for k, m in enumerate(table.models)}

    best = int(np.argmax(table.scores.mean(axis=0)))
    limit = 0.3 * table.costs[stream, best].sum()
    budget = Budget(limit, period=len(stream), unit="queries")
    router = Router([cards[m] for m in known], encoder=sentence_encoder(), seed=0, budget=budget)
    table_prior(router, [table.prompts[i] for i in stored], table.scores[np.ix_(stored, [column[m] for m in known])],
                known)
    print(f"1. warm start: {len(known)} models learned {len(stored)} stored prompts")

    answers = {table.prompts[i]: table.scores[i, column[args.new]] for i in quiz}
    quiz_prompts = [table.prompts[i] for i in quiz]
    known_scores = {m: table.scores[quiz, column[m]] for m in known}
    weights, offset = quiz_mix([answers[p] for p in quiz_prompts], known_scores)
    onboard(router, cards[args.new], quiz_prompts, lambda prompt, model: answers[prompt], known=known_scores)
    alike = max(weights, key=weights.get)
    print(f"2. {args.new} added: quiz mean {np.mean(list(answers.values())):.2f}, answers most like {alike} "
          f"(weight {weights[alike]:.2f}), offset {offset:+.2f}")

    run = replay(table.subset(stream), router, cost_weight=0.0, seed=0)
    share = np.mean(run.chosen == column[args.new])
    print(f"3. {len(stream)} prompts under a ${limit:.4f} budget: spent ${budget.total_spent():.4f} "
          f"({budget.total_spent() / limit:.0%}), mean score {run.mean_score:.3f} "
          f"(best single model alone: {table.scores[stream, best].mean():.3f} at "
          f"${table.costs[stream, best].sum():.4f}), {args.new} chosen for {share:.0%}")


if __name__ == "__main__":
    main()

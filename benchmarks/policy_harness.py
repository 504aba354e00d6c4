"""Fast replay of a shared set through a policy's `probabilities`/`learn` directly, without the Router.

Same protocol as `bandit_router.evaluation.replay` (prompts shuffled by `default_rng(seed)`, the choice drawn
from the policy's probabilities with the Router's `default_rng([seed, 1])`, bandit feedback, each model's cost
predicted from its card for the prompt's estimated tokens and 256 output tokens, divided by the largest), so a
cell reproduces the Router-based replay; it is 5-10 times faster, for exploring settings. Prints hull gain,
mean score and cost (% of the best model's) per dial, mean over seeds, and the learning curve.

    PYTHONPATH=. python benchmarks/policy_harness.py llmrouter-9 shrunk-linucb '{"alpha": 0.3}' [--dials ...]
    PYTHONPATH=. OPENBLAS_NUM_THREADS=1 python benchmarks/policy_harness.py perf shrunk-linucb  # speed, 10 models
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from bandit_router.encoders import sentence_encoder
from bandit_router.evaluation import load_table, table_vectors
from bandit_router.outcome import Outcome
from bandit_router.evaluation.metrics import hull_gain, learning_curve
from bandit_router.models import estimate_tokens
from bandit_router.policies import make_policy
from bandit_router.router import check_prompt

DATA = "/work/shared/data"
OUTPUT_TOKENS = 256  # the Router's expected_output_tokens default


def load(name: str):
    """(table, prompt vectors, the policy's normalised costs (n, K))."""
    table = load_table(f"{DATA}/{name}", invalid_rows="drop" if name == "routerarena-2" else "raise")
    vectors = table_vectors(table, sentence_encoder("sentence-transformers/all-MiniLM-L6-v2"))
    cards = table.model_cards()
    tokens = [estimate_tokens(check_prompt(p, 10**9)[1]) for p in table.prompts]
    cost = np.array([[c.cost(t, OUTPUT_TOKENS) for c in cards] for t in tokens])
    return table, vectors, cost / np.where(cost.max(axis=1, keepdims=True) > 0, cost.max(axis=1, keepdims=True), 1)


def run(table, vectors, norm_cost, policy: str, settings: dict, dial: float, seed: int):
    """(chosen model per routed row, the rows in routing order)."""
    K = len(table.models)
    pol = make_policy(policy, vectors.shape[1], table.models, seed=seed, **settings)
    rng = np.random.default_rng([seed, 1])
    order = np.random.default_rng(seed).permutation(len(table))
    arms = list(range(K))
    chosen = np.empty(len(order), dtype=int)
    for step, i in enumerate(order):
        probs, _ = pol.probabilities(vectors[i], arms, norm_cost[i], dial)
        k = int(rng.choice(K, p=probs))
        chosen[step] = k
        pol.learn([Outcome(vectors[i], table.models[k], float(table.scores[i, k]), float(norm_cost[i, k]), dial,
                           float(probs[k]))])
    return chosen, order


def perf(policy: str, settings: dict, models: int = 10, dim: int = 384, n: int = 5000) -> None:
    """Decision latency (p50, p99 of `probabilities`) and feedback updates per second, after `n` warm-up ratings."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, dim)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    arms = [f"m{k}" for k in range(models)]
    pol = make_policy(policy, dim, arms, seed=0, **settings)
    started = time.perf_counter()
    for i, x in enumerate(X):
        pol.learn([Outcome(x, arms[i % models], float(rng.random()), 0.5, 0.1, 1.0)])
    rate = n / (time.perf_counter() - started)
    cost, idx, times = rng.random(models), list(range(models)), []
    for x in X[:2000]:
        t = time.perf_counter()
        pol.probabilities(x, idx, cost, 0.1)
        times.append(time.perf_counter() - t)
    print(f"{policy} {settings}: {models} models, dim {dim}: decision p50 {1e3 * np.median(times):.3f} ms, "
          f"p99 {1e3 * np.percentile(times, 99):.3f} ms; {rate:,.0f} updates/s")


def main() -> None:
    if sys.argv[1] == "perf":
        return perf(sys.argv[2], json.loads(sys.argv[3]) if len(sys.argv) > 3 else {})
    parser = argparse.ArgumentParser()
    parser.add_argument("set")
    parser.add_argument("policy")
    parser.add_argument("settings", nargs="?", default="{}")
    parser.add_argument("--dials", default="0,0.03,0.06,0.1,0.2,0.5")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    table, vectors, norm_cost = load(args.set)
    settings = json.loads(args.settings)
    singles = (table.costs.mean(axis=0), table.scores.mean(axis=0))
    best_cost = table.costs[:, singles[1].argmax()].mean()
    checkpoints = [c for c in (250, 500, 1000, 2000) if c < len(table)] + [len(table)]
    started = time.perf_counter()
    print(f"{args.set} {args.policy} {args.settings}")
    gains = []
    for dial in map(float, args.dials.split(",")):
        rows = []
        for seed in range(args.seeds):
            chosen, order = run(table, vectors, norm_cost, args.policy, settings, dial, seed)
            s, c = table.scores[order, chosen], table.costs[order, chosen]
            running = learning_curve(s, c, checkpoints, table.costs[order], table.scores[order])
            rows.append((s.mean(), c.mean(), running))
        s, c = np.mean([r[0] for r in rows]), np.mean([r[1] for r in rows])
        g = [float(hull_gain(r[1], r[0], *singles)) for r in rows]
        gains.append(np.mean(g))
        curve = np.mean([r[2] for r in rows], axis=0)
        print(f"  dial {dial:<5g} score {s:.4f} cost {100 * c / best_cost:6.1f}% (seeds "
              + " ".join(f"{100 * r[1] / best_cost:.0f}" for r in rows) + f") hull gain {np.mean(g):+.4f} "
              f"(sd {np.std(g):.4f})  curve " + " ".join(f"{v:+.3f}" for v in curve))
    print(f"  min {min(gains):+.4f} max {max(gains):+.4f}  ({time.perf_counter() - started:.0f} s)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

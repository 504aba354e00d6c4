"""Reference routers for a routing table: each single model, the oracle, and a full-information ridge router.

Each returns `ReplayRun`s, like a replay of the real Router, so that every run is measured the same way.
"""

from __future__ import annotations

import numpy as np

from ..models import estimate_tokens
from .metrics import oracle_choice
from .replay import ReplayRun
from .table import RoutingTable

__all__ = ["predicted_costs", "single_model_runs", "oracle_run", "cross_fit_folds", "full_info_ridge_run"]


def predicted_costs(table: RoutingTable, expected_output_tokens: int = 256) -> np.ndarray:
    """(n, K) costs the Router predicts before a call: prompt tokens estimated from its length, a fixed output."""
    cards = table.model_cards()
    tokens = np.array([estimate_tokens(p) for p in table.prompts], dtype=float)
    inputs = np.array([c.input_cost_per_token for c in cards])
    outputs = np.array([c.output_cost_per_token for c in cards])
    return tokens[:, None] * inputs + expected_output_tokens * outputs


def _run(table: RoutingTable, label: str, cost_weight: float, seed: int, rows: np.ndarray,
         chosen: np.ndarray) -> ReplayRun:
    return ReplayRun(label, cost_weight, seed, rows, chosen, np.ones(len(rows)), table.scores[rows, chosen],
                     table.costs[rows, chosen])


def single_model_runs(table: RoutingTable, cost_weight: float = 0.0) -> list[ReplayRun]:
    """One run per model that always calls it, labelled `single:<model>`."""
    rows = np.arange(len(table))
    return [_run(table, f"single:{model}", cost_weight, 0, rows, np.full(len(rows), k))
            for k, model in enumerate(table.models)]


def oracle_run(table: RoutingTable, cost_weight: float) -> ReplayRun:
    """The best model per prompt in hindsight at the dial (highest utility, cheapest among ties)."""
    rows = np.arange(len(table))
    return _run(table, "oracle", cost_weight, 0, rows, oracle_choice(table.scores, table.costs, cost_weight))


def cross_fit_folds(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Two (train, test) folds of a seeded random split of n prompts into halves: each half is routed by what
    was fitted on the other, so a full-information router routes every prompt, as a replay does."""
    rows = np.random.default_rng(seed).permutation(n)
    first, second = rows[: n // 2], rows[n // 2:]
    return [(first, second), (second, first)]


def _normalised(cost: np.ndarray) -> np.ndarray:
    """Costs divided by the highest on their prompt (the last axis), as the Router normalises them."""
    tau = cost.max(axis=-1, keepdims=True)
    return cost / np.where(tau > 0, tau, 1.0)


def full_info_ridge_run(table: RoutingTable, vectors: np.ndarray, cost_weight: float, seed: int,
                        regularization: float = 1.0, expected_output_tokens: int = 256) -> ReplayRun:
    """The supervised upper reference: per-model ridge regression of score on the prompt vector (with an
    intercept), fitted with every model's score on one half of the prompts, routing the other half by predicted
    score less the dial times a normalised predicted cost; cross-fitted (`cross_fit_folds`), so it routes every
    prompt. The predicted cost is the Router's, from prices; when some model has no prices (`table.priced` is
    False), it is each model's mean cost on the fitted half, as the Router learns costs it has no prices for."""
    Z = np.hstack([vectors.astype(np.float64), np.ones((len(vectors), 1))])
    predicted = _normalised(predicted_costs(table, expected_output_tokens)) if table.priced else None
    chosen = np.empty(len(table), dtype=int)
    for train, test in cross_fit_folds(len(table), seed):
        gram = Z[train].T @ Z[train] + regularization * np.eye(Z.shape[1])
        theta = np.linalg.solve(gram, Z[train].T @ table.scores[train])  # (p, K): one column per model
        price = _normalised(table.costs[train].mean(axis=0)) if predicted is None else predicted[test]
        chosen[test] = (Z[test] @ theta - cost_weight * price).argmax(axis=1)
    rows = np.arange(len(table))
    return _run(table, "full-info-ridge", cost_weight, seed, rows, chosen)

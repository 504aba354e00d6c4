"""Warm starts from offline data, and quiz onboarding of a new model.

- `table_prior`: a routing table with every model's score on some prompts (full information).
- `preference_prior`: pairwise preferences (prompt, model_a, model_b, winner): a Bradley-Terry model
  u_k(x) = w_k . [x, 1] is fitted, and each model's chance of beating the average model,
  sigmoid(u_k(x) - mean_j u_j(x)), becomes its target score on that prompt.
- `onboard`: score a new model on a few stored prompts through an evaluator and learn from the scores.

`strength` is how many online observations one offline observation is worth: the prior's statistics are
scaled by it (A = lambda I + strength sum z z^T, b = strength sum r z), so with a small strength a few
online ratings move the policy away from the prior, and with a large one they barely do.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np

from .errors import ConfigError
from .models import Model
from .policies.ridge import RidgePolicy
from .router import Router, check_score

__all__ = ["absorb", "table_prior", "preference_prior", "fit_bradley_terry", "onboard"]


def _strength(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < np.inf:
        raise ConfigError(f"strength must be a finite number > 0 (online observations per offline one), got {value!r}")
    return float(value)


def absorb(router: Router, vectors: np.ndarray, scores: np.ndarray, models: Sequence[str],
           strength: float = 1.0) -> None:
    """Teach the router's policy `scores[i, k]` of `models[k]` on prompt vector `vectors[i]`, each observation
    counting `strength` online ones."""
    weight = _strength(strength)
    vectors, scores = np.asarray(vectors, dtype=float), np.asarray(scores, dtype=float)
    if vectors.ndim != 2 or scores.shape != (len(vectors), len(models)):
        raise ConfigError(f"scores must have shape (prompts, models) = ({len(vectors)}, {len(models)}), "
                          f"got {scores.shape}")
    if not (np.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all()):
        raise ConfigError("scores must be finite numbers in [0, 1]")
    unknown = [m for m in models if m not in router.models]
    if unknown:
        raise ConfigError(f"models contains unknown names {unknown}; known: {list(router.models)}")
    policy = router.policy
    with router._lock:
        if isinstance(policy, RidgePolicy):  # sufficient statistics at once: one inverse per model
            state = {k: v.copy() for k, v in policy.state().items()}
            Z = np.column_stack([vectors, np.ones(len(vectors))]) if policy.config.intercept else vectors
            for k, model in enumerate(models):
                a = policy.index(model)
                state["A"][a] += weight * Z.T @ Z
                state["b"][a] += weight * Z.T @ scores[:, k]
                state["A_inv"][a] = np.linalg.inv(state["A"][a])
            policy.load_state(state)
        else:
            policy.absorb(vectors, scores, list(models), weight)


def table_prior(router: Router, prompts: Sequence[str], scores: np.ndarray, models: Sequence[str],
                strength: float = 1.0) -> None:
    """Warm-start `router` from a routing table: `scores[i, k]` is model `models[k]`'s score on `prompts[i]`."""
    absorb(router, router.encoder.encode(list(prompts)), scores, models, strength)


def fit_bradley_terry(vectors: np.ndarray, first: np.ndarray, second: np.ndarray, outcome: np.ndarray,
                      n_models: int, l2: float = 1.0, steps: int = 300) -> np.ndarray:
    """Weights W (n_models, dim + 1) of u_k(x) = W_k . [x, 1] maximising the Bradley-Terry likelihood of
    P(first beats second) = sigmoid(u_first - u_second) = `outcome` (1 win, 0 loss, 0.5 tie), L2-penalised."""
    Z = np.column_stack([vectors, np.ones(len(vectors))])
    W = np.zeros((n_models, Z.shape[1]))
    m = np.zeros_like(W)
    v = np.zeros_like(W)
    for t in range(1, steps + 1):  # Adam on the mean negative log-likelihood
        p = 1.0 / (1.0 + np.exp(-np.einsum("np,np->n", W[first] - W[second], Z)))
        g_row = (p - outcome)[:, None] * Z
        grad = np.zeros_like(W)
        np.add.at(grad, first, g_row)
        np.add.at(grad, second, -g_row)
        grad = grad / len(Z) + l2 * W / len(Z)
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad**2
        W -= 0.05 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return W


def preference_prior(router: Router, comparisons: Iterable[tuple[str, str, str, str]], strength: float = 1.0,
                     l2: float = 1.0) -> None:
    """Warm-start `router` from pairwise preferences (prompt, model_a, model_b, winner); winner is model_a,
    model_b or "tie". Every model seen in a comparison gets a target score on every compared prompt."""
    rows = list(comparisons)
    if not rows:
        raise ConfigError("comparisons must hold at least one (prompt, model_a, model_b, winner) tuple")
    models = sorted({m for _, a, b, _ in rows for m in (a, b)})
    prompts = sorted({p for p, *_ in rows})
    column, line = {m: k for k, m in enumerate(models)}, {p: i for i, p in enumerate(prompts)}
    outcome = []
    for prompt, a, b, winner in rows:
        if winner not in (a, b, "tie") or a == b:
            raise ConfigError(f"winner must be model_a, model_b or 'tie' for two different models, "
                              f"got {(a, b, winner)!r}")
        outcome.append(1.0 if winner == a else 0.0 if winner == b else 0.5)
    vectors = router.encoder.encode(prompts)
    index = np.array([line[p] for p, *_ in rows])
    W = fit_bradley_terry(vectors[index], np.array([column[a] for _, a, _, _ in rows]),
                          np.array([column[b] for _, _, b, _ in rows]), np.array(outcome), len(models), l2)
    utility = np.column_stack([vectors, np.ones(len(vectors))]) @ W.T
    targets = 1.0 / (1.0 + np.exp(-(utility - utility.mean(axis=1, keepdims=True))))
    absorb(router, vectors, targets, models, strength)


def onboard(router: Router, model: Model | str, prompts: Sequence[str],
            evaluator: Callable[[str, str], float], features: np.ndarray | None = None) -> list[float]:
    """Add `model` to `router` (unless it is there) and teach the router its scores on `prompts` (a quiz).

    `evaluator(prompt, model_name)` returns the model's score in [0, 1] on the prompt, e.g. by calling the model
    and grading the answer. Returns the scores.
    """
    name = model.name if isinstance(model, Model) else model
    if name not in router.models:
        router.add_model(model, features=features)
    scores = [check_score(evaluator(prompt, name)) for prompt in prompts]
    for prompt, score in zip(prompts, scores):
        router.observe(prompt, name, score)
    return scores

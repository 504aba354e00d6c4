"""Warm starts from offline data, and quiz onboarding of a new model.

- `table_prior`: a routing table with every model's score (and cost) on some prompts (full information).
- `preference_prior`: pairwise preferences (prompt, model_a, model_b, winner): a Bradley-Terry model
  u_k(x) = w_k . [x, 1] is fitted, and each model's chance of beating the average model,
  sigmoid(u_k(x) - mean_j u_j(x)), becomes its target score on that prompt.
- `mix_prior`: start a model added at run time as a weighted mix of known models' learned quality models
  (LLM Bandit's idea of placing a new model among known ones), with weights from its description
  (`description_mix`) or from its answers on a quiz the known models also took (`quiz_mix`).
- `onboard`: score a new model on a few stored prompts through an evaluator and learn from the scores.

`strength` is how many online observations one offline observation is worth: the prior's statistics are
scaled by it (A = lambda I + strength sum z z^T, b = strength sum r z), so with a small strength a few
online ratings move the policy away from the prior, and with a large one they barely do.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from .checks import check_model_names, check_positive
from .errors import ConfigError
from .models import Model, estimate_tokens
from .outcome import Outcome
from .router import Router, check_score

__all__ = ["absorb", "table_prior", "preference_prior", "fit_bradley_terry", "mix_prior", "description_mix",
           "quiz_mix", "onboard"]

MIX_STRENGTH = 3000.0  # observations a mix prior is worth (chosen on llmrouter-9, docs/budgets_priors_results.md)


def _strength(value: float) -> float:
    return check_positive(value, "strength", unit="online observations per offline one")


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
    check_model_names(list(models), router.models)
    router.learn([Outcome(vector, model, float(score), weight=weight)
                  for vector, row in zip(vectors, scores) for model, score in zip(models, row)])


def table_prior(router: Router, prompts: Sequence[str], scores: np.ndarray, models: Sequence[str],
                strength: float = 1.0, tasks: Sequence[str | None] | None = None,
                costs: np.ndarray | None = None) -> None:
    """Warm-start `router` from a routing table: `scores[i, k]` is model `models[k]`'s score on `prompts[i]`
    (of task `tasks[i]`, one of the router's tasks or None, when the router declares tasks).

    `costs[i, k]` (same shape, in the unit the router settles: USD for priced models) is what that call cost. The
    router's cost model learns each as a settled call of one answer, exactly what `settle` would teach it (one call
    each, whatever `strength`): a model without prices learns its cost, a priced model its answer length at its
    card's prices, (cost - prompt tokens x input price) / output price. Without `costs`, an unpriced model's cost
    stays unknown until it is called.
    """
    if costs is not None:
        costs = _table_costs(costs, np.shape(scores))
    absorb(router, router.vectors(prompts, tasks), scores, models, strength)
    if costs is not None:
        with router.lock:
            for prompt, row in zip(prompts, costs):
                tokens = estimate_tokens(prompt)
                for model, cost in zip(models, row):
                    router.costs.observe(model, tokens, float(cost))


def _table_costs(costs: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """`costs` as floats of the scores' `shape`, each finite and >= 0; ConfigError naming `costs` otherwise."""
    costs = np.asarray(costs, dtype=float)
    if costs.shape != shape:
        raise ConfigError(f"costs must have the scores' shape (prompts, models) = {shape}, got {costs.shape}")
    if not (np.isfinite(costs).all() and (costs >= 0).all()):
        raise ConfigError("costs must be finite numbers >= 0")
    return costs


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
    vectors = router.vectors(prompts)
    index = np.array([line[p] for p, *_ in rows])
    W = fit_bradley_terry(vectors[index], np.array([column[a] for _, a, _, _ in rows]),
                          np.array([column[b] for _, _, b, _ in rows]), np.array(outcome), len(models), l2)
    utility = np.column_stack([vectors, np.ones(len(vectors))]) @ W.T
    targets = 1.0 / (1.0 + np.exp(-(utility - utility.mean(axis=1, keepdims=True))))
    absorb(router, vectors, targets, models, strength)


def _softmax(values: np.ndarray, temperature: float) -> np.ndarray:
    check_positive(temperature, "temperature")
    w = np.exp((values - values.max()) / temperature)
    return w / w.sum()


def mix_prior(router: Router, model: str, weights: Mapping[str, float], strength: float = MIX_STRENGTH,
              offset: float = 0.0) -> None:
    """Start `model` as the `weights`-mix of known models' quality models, shifted by `offset`.

    Its prior mean is sum_j w_j theta_j (+ `offset` on the intercept) and its prior precision is
    D + strength sum_j w_j (A_j - D_j) / n_j: worth `strength` observations spread like the known models'
    prompts (D_j = model j's prior precision, n_j = its observation count). Replaces anything `model` has
    learned; needs a per-model ridge policy (shrunk-linucb, linucb, thompson, epsilon-greedy) with an intercept.
    """
    policy = router.policy
    if not policy.takes_prior:
        raise ConfigError(f"mix_prior needs shrunk-linucb, linucb, thompson or epsilon-greedy with intercept=True, "
                          f"not {policy.name!r}")
    weight = _strength(strength)
    if not np.isfinite(offset):
        raise ConfigError(f"offset must be a finite number, got {offset!r}")
    if model not in router.models:
        raise ConfigError(f"unknown model {model!r}; add it first with router.add_model")
    unknown = [m for m in weights if m not in router.models or m == model]
    if unknown or not weights:
        raise ConfigError(f"weights must name other models of the router, got {list(weights)}")
    w = np.array([weights[m] for m in weights], dtype=float)
    if not (np.isfinite(w).all() and (w >= 0).all() and w.sum() > 0):
        raise ConfigError("weights must be finite numbers >= 0 with a positive sum")
    with router.lock:
        A = policy.A
        rows = [policy.index(m) for m in weights]
        data = {j: A[j] - policy.prior_precision(j) for j in rows}  # sum z z^T
        counts = np.array([data[j][-1, -1] for j in rows])  # the intercept's diagonal counts observations
        w = np.where(counts >= 1, w, 0.0)  # a model that learned nothing has nothing to lend
        if w.sum() == 0:
            raise ConfigError(f"none of {list(weights)} has observations to borrow from")
        w /= w.sum()
        mean = sum(wj * policy.theta[j] for wj, j in zip(w, rows))
        spread = sum(wj * data[j] / max(c, 1.0) for wj, j, c in zip(w, rows, counts))
        mean[-1] += offset
        policy.set_prior(model, mean, policy.prior_precision(policy.index(model)) + weight * spread)


def description_mix(router: Router, model: str, encoder: Callable[[str], np.ndarray] | None = None,
                    temperature: float = 0.05) -> dict[str, float]:
    """Weights over the router's other models by how close their descriptions are to `model`'s: a softmax
    of the cosine similarity of their embeddings (`encoder`, default the router's) over `temperature`."""
    encode = encoder or router.encoder
    cards = router.models
    if model not in cards or not cards[model].description.strip():
        raise ConfigError(f"model {model!r} must be in the router and have a description")
    others = [m for m in cards if m != model and cards[m].description.strip()]
    if not others:
        raise ConfigError("no other model of the router has a description to compare with")
    unit = [np.asarray(encode(cards[m].description), dtype=float) for m in [model] + others]
    unit = [v / np.linalg.norm(v) for v in unit]
    return dict(zip(others, _softmax(np.array([unit[0] @ v for v in unit[1:]]), temperature)))


def quiz_mix(scores: Sequence[float], known: Mapping[str, Sequence[float]],
             temperature: float = 0.05) -> tuple[dict[str, float], float]:
    """Weights over known models by how alike their quiz scores are to the new model's `scores` (a softmax of
    minus the mean squared difference over `temperature`), and the offset: the new model's mean quiz score
    minus the weighted known models' mean."""
    new = np.asarray(scores, dtype=float)
    table = {m: np.asarray(s, dtype=float) for m, s in known.items()}
    if not table or len(new) == 0 or any(s.shape != new.shape for s in table.values()):
        raise ConfigError(f"known must map model names to scores on the same {len(new)} quiz prompts")
    if not all(np.isfinite(s).all() and (s >= 0).all() and (s <= 1).all() for s in [new, *table.values()]):
        raise ConfigError("quiz scores must be finite numbers in [0, 1]")
    w = _softmax(-np.array([np.mean((new - s) ** 2) for s in table.values()]), temperature)
    offset = new.mean() - sum(wj * s.mean() for wj, s in zip(w, table.values()))
    return dict(zip(table, w)), float(offset)


def onboard(router: Router, model: Model | str, prompts: Sequence[str],
            evaluator: Callable[[str, str], float], features: np.ndarray | None = None,
            known: Mapping[str, Sequence[float]] | None = None, strength: float = MIX_STRENGTH) -> list[float]:
    """Add `model` to `router` (unless it is there) and teach the router its scores on `prompts` (a quiz).

    `evaluator(prompt, model_name)` returns the model's score in [0, 1] on the prompt, e.g. by calling the model
    and grading the answer. With `known` (the router's models' scores on the same prompts, e.g. from the table
    the quiz was drawn from), the model first gets a `mix_prior` of the models it answers like (`quiz_mix`),
    worth `strength` observations. The answers are then learned in one batch, like a prior: under a shared state
    store each replica that onboards the model keeps them as its own (so onboard it on every replica that serves
    it). Returns the scores. A quiz that fails (the evaluator raises or returns no score in [0, 1]) removes a
    model it added, so no untaught model is left routed to.
    """
    name = model.name if isinstance(model, Model) else model
    added = name not in router.models
    if added:
        router.add_model(model, features=features)  # first: the evaluator may call it through the router
    try:
        scores = [check_score(evaluator(prompt, name)) for prompt in prompts]
    except BaseException:
        if added:
            router.remove_model(name)
        raise
    if known is not None:
        weights, offset = quiz_mix(scores, known)
        mix_prior(router, name, weights, strength, offset)
    table_prior(router, prompts, np.array(scores)[:, None], [name])
    return scores

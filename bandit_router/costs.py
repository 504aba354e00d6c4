"""The learned cost model: per model, the expected cost of a call for a prompt, learned from every settled call.

List price x (prompt tokens + a fixed output length) misjudges what a call costs: output length differs by
model (a verbose or reasoning model writes several times more) and by prompt, and some deployments bill per
call, per second or in energy. The router sees the real cost of every call it settles; `CostModel` learns
from it.

A call may ask for several answers (OpenAI's `n`): the model learns and predicts one answer, so a call's prediction
counts its n answers and a settled call teaches its cost per answer (below).

For each model and prompt-length bucket (floor(log2(prompt tokens)), `BUCKETS` of them) it keeps two additive
sufficient statistics: the number of settled calls and the sum of what each call tells:
- a priced model (output price > 0): the output tokens of one answer at the card's prices, (cost - prompt tokens x
  input price) / output price / n (the prompt is billed once, the output n times), so the prediction is prompt
  tokens x input price + n x learned output tokens x output price. It starts from `expected_output_tokens` (the
  price-based estimate, worth `prior_weight` calls), pooled with every priced model's settled calls: what all
  calls show about the deployment (a tokenizer that counts fewer tokens than four characters each, terse answers)
  reaches a model with few calls of its own, so a model tried less is not judged by a stale list-price estimate
  beside models judged by their real costs;
- a model without prices (e.g. a routing table's model whose calls are costed in joules): the cost of one answer,
  cost / n (with no prices to tell the prompt's part from the output's, the whole cost is taken to grow with the
  answers), so the prediction is n x the learned cost, starting from the first settled calls; before any, the
  mean of the other eligible models' predictions (a neutral estimate that favours no model; 0 when none has been
  seen, which makes every cost term equal).
A model's mean is shrunk to the pooled mean by `model_weight` calls and a bucket's mean to its model's by
`bucket_weight` calls, so a model or a bucket with few calls follows the level above. Replicas merge the statistics by adding them (`state`/`merge`), like the linear policies' own.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Mapping, Sequence

import numpy as np

from .checks import check_non_negative
from .errors import StateFormatError
from .models import Model

__all__ = ["CostModel", "BUCKETS", "call_cost", "cost_errors"]

BUCKETS = 16  # prompt-length buckets: 1, 2-3, 4-7, ... tokens; the last holds 32,768 tokens and more


def bucket(prompt_tokens: int) -> int:
    """The prompt-length bucket of a prompt of `prompt_tokens` tokens."""
    return min(int(math.log2(max(prompt_tokens, 1))), BUCKETS - 1)


def call_cost(response: Any, card: Model, usage: Mapping[str, int]) -> float:
    """What a call cost: LiteLLM's own response cost when it reports one at the card's prices (the card's are the
    ones its cost map lists), else the card's prices x the usage (a card priced otherwise, e.g. a self-hosted or
    discounted deployment under a listed name; LiteLLM reports 0 for a model whose price it does not know)."""
    reported = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
    if isinstance(reported, (int, float)) and not isinstance(reported, bool) and math.isfinite(reported) \
            and reported > 0 and card.listed_prices:
        return float(reported)
    return card.cost(usage["prompt_tokens"], usage["completion_tokens"])


class CostModel:
    """Expected cost of a call per model and prompt, learned from settled calls (see the module docstring).

    Args:
        models: the router's model cards (their prices; zero prices: the cost is learned directly).
        expected_output_tokens: the output length a priced model is assumed to write before its calls settle.
        prior_weight: how many calls the price-based estimate is worth.
        model_weight: how many calls a priced model needs before its own mean outweighs the pooled one.
        bucket_weight: how many calls a prompt-length bucket needs before its own mean outweighs its model's.
        max_open: most routed calls remembered until they settle (the oldest is forgotten beyond it).
    """

    def __init__(self, models: Sequence[Model], expected_output_tokens: int = 256, prior_weight: float = 1.0,
                 model_weight: float = 5.0, bucket_weight: float = 5.0, max_open: int = 100_000) -> None:
        for name, value in (("prior_weight", prior_weight), ("model_weight", model_weight),
                            ("bucket_weight", bucket_weight)):
            check_non_negative(value, name, "calls")
        self.expected_output_tokens = expected_output_tokens
        self.prior_weight = float(prior_weight)
        self.model_weight = float(model_weight)
        self.bucket_weight = float(bucket_weight)
        self.max_open = max_open
        self.cards: dict[str, Model] = {}
        self._n: dict[str, np.ndarray] = {}
        self._sum: dict[str, np.ndarray] = {}
        self._open: OrderedDict[str, tuple[str, int, int]] = OrderedDict()  # route_id -> (model, prompt tokens, n)
        for card in models:
            self.add(card)

    # -- models ---------------------------------------------------------------------------------------------
    def add(self, card: Model) -> None:
        """Start learning the cost of a new model (from its prices, or from its first calls)."""
        self.cards[card.name] = card
        self._n[card.name] = np.zeros(BUCKETS)
        self._sum[card.name] = np.zeros(BUCKETS)

    def replace(self, card: Model) -> None:
        """A new card for a known model: its learned means are kept unless it changes between priced (means of
        output tokens) and unpriced (means of cost), whose means are not comparable."""
        priced = self.priced(card.name)
        self.cards[card.name] = card
        if self.priced(card.name) != priced:
            self._n[card.name], self._sum[card.name] = np.zeros(BUCKETS), np.zeros(BUCKETS)

    def remove(self, name: str) -> None:
        for table in (self.cards, self._n, self._sum):
            del table[name]

    def priced(self, name: str) -> bool:
        """Whether `name`'s cost is learned through output tokens at its card's prices (output price > 0)."""
        return self.cards[name].output_cost_per_token > 0

    # -- predicting -----------------------------------------------------------------------------------------
    def _mean(self, name: str, prompt_tokens: int) -> float | None:
        """The model's learned mean per answer (output tokens, or cost) in the prompt's bucket; None: nothing
        known."""
        card, n, total = self.cards[name], self._n[name], self._sum[name]
        if self.priced(name):
            priced = [m for m in self.cards if self.priced(m)]
            pooled_n, pooled_sum = sum(self._n[m].sum() for m in priced), sum(self._sum[m].sum() for m in priced)
            prior = (self.prior_weight * self.expected_output_tokens + pooled_sum) / (self.prior_weight + pooled_n) \
                if self.prior_weight + pooled_n > 0 else float(self.expected_output_tokens)
            weight = self.model_weight
        elif card.input_cost_per_token > 0:
            prior, weight = prompt_tokens * card.input_cost_per_token, self.prior_weight
        else:
            prior, weight = 0.0, 0.0
        calls = n.sum()
        if calls + weight == 0:
            return None
        model_mean = (weight * prior + total.sum()) / (weight + calls)
        b = bucket(prompt_tokens)
        return float((self.bucket_weight * model_mean + total[b]) / (self.bucket_weight + n[b])) \
            if self.bucket_weight + n[b] > 0 else model_mean

    def predict(self, names: Sequence[str], prompt_tokens: int, max_tokens: int | None = None,
                choices: int = 1) -> np.ndarray:
        """Expected cost of a call to each of `names` for a prompt of `prompt_tokens` tokens asking for `choices`
        answers (OpenAI's `n`; each capped at `max_tokens` when given); models with nothing known get the mean of
        the others (0 if none is known)."""
        cost = np.full(len(names), np.nan)
        for i, name in enumerate(names):
            mean = self._mean(name, prompt_tokens)
            if mean is None:
                continue
            card = self.cards[name]
            if self.priced(name):
                output = mean if max_tokens is None else min(mean, max_tokens)
                cost[i] = max(prompt_tokens * card.input_cost_per_token
                              + choices * output * card.output_cost_per_token, 0.0)
            else:
                cost[i] = choices * max(mean, 0.0)
        known = cost[~np.isnan(cost)]
        return np.where(np.isnan(cost), known.mean() if known.size else 0.0, cost)

    # -- learning -------------------------------------------------------------------------------------------
    def observe(self, name: str, prompt_tokens: int, cost: float, choices: int = 1) -> None:
        """Learn one settled call of `name` on a prompt of `prompt_tokens` tokens that asked for `choices` answers
        and cost `cost`."""
        if name not in self.cards:
            return  # the model was removed while its call was in flight
        card = self.cards[name]
        value = ((cost - prompt_tokens * card.input_cost_per_token) / card.output_cost_per_token
                 if self.priced(name) else cost) / choices
        b = bucket(prompt_tokens)
        self._n[name][b] += 1
        self._sum[name][b] += value

    def routed(self, route_id: str, name: str, prompt_tokens: int, choices: int = 1) -> None:
        """Remember a routed call (asking for `choices` answers) until it settles."""
        self._open[route_id] = (name, prompt_tokens, choices)
        while len(self._open) > self.max_open:
            self._open.popitem(last=False)

    def served(self, route_id: str, name: str) -> None:
        """The call of `route_id` was served by `name` (a fallback after a provider error)."""
        if route_id in self._open:
            self._open[route_id] = (name, *self._open[route_id][1:])

    def settle(self, route_id: str, cost: float | None) -> bool:
        """Learn the real cost of the call routed as `route_id` (None: unknown, nothing is learned); False if that
        call is not waiting for its cost."""
        if cost is not None:
            check_non_negative(cost, "cost")
        opened = self._open.pop(route_id, None)
        if opened is not None and cost is not None:
            name, prompt_tokens, choices = opened
            self.observe(name, prompt_tokens, float(cost), choices)
        return opened is not None

    def forget(self, route_id: str) -> bool:
        """Drop a routed call that was never made; False if it was not waiting for its cost."""
        return self._open.pop(route_id, None) is not None

    # -- state ----------------------------------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        """The statistics as arrays, rows in the order of the models: {"n": (K, BUCKETS), "sum": (K, BUCKETS)}.
        They are additive: the state of two replicas is the sum of theirs (see `merge`)."""
        names = list(self.cards)
        return {"n": np.array([self._n[m] for m in names]).reshape(len(names), BUCKETS),
                "sum": np.array([self._sum[m] for m in names]).reshape(len(names), BUCKETS)}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Install arrays produced by `state()` for the same models in the same order."""
        self._check(state)
        for i, name in enumerate(self.cards):
            self._n[name], self._sum[name] = np.array(state["n"][i], float), np.array(state["sum"][i], float)

    def merge(self, delta: Mapping[str, np.ndarray]) -> None:
        """Add another replica's statistics (arrays from its `state()`, same models in the same order)."""
        self._check(delta)
        for i, name in enumerate(self.cards):
            self._n[name] = self._n[name] + delta["n"][i]
            self._sum[name] = self._sum[name] + delta["sum"][i]

    def _check(self, state: Mapping[str, np.ndarray]) -> None:
        shape = (len(self.cards), BUCKETS)
        if set(state) != {"n", "sum"} or any(np.shape(state[k]) != shape for k in ("n", "sum")):
            raise StateFormatError(f"cost model state must hold arrays 'n' and 'sum' of shape {shape}, got "
                                   f"{ {k: np.shape(v) for k, v in state.items()} }")
        if not (np.all(np.isfinite(state["n"])) and np.all(np.isfinite(state["sum"])) and np.all(state["n"] >= 0)):
            raise StateFormatError("cost model state must hold finite sums and counts >= 0")


def cost_errors(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Per model, how far the predicted cost of each served call was from its realised cost: decision-log rows
    (`DecisionLog.rows()`) with both -> {model: {"calls", "mape", "mean_predicted", "mean_realised"}}; MAPE over
    calls with a realised cost > 0. Streams cut part-way are left out: their cost is their hold's worst case."""
    by_model: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        if row.get("predicted_cost") is not None and row.get("cost") is not None and \
                row.get("status", "served") == "served" and row.get("error") != "cut":  # a cut's cost is its hold
            by_model.setdefault(row["model"], []).append((float(row["predicted_cost"]), float(row["cost"])))
    errors = {}
    for model, pairs in by_model.items():
        predicted, realised = np.array(pairs).T
        positive = realised > 0
        errors[model] = {"calls": len(pairs), "mean_predicted": float(predicted.mean()),
                         "mean_realised": float(realised.mean()),
                         "mape": float(np.mean(np.abs(predicted[positive] - realised[positive]) / realised[positive]))
                         if positive.any() else math.nan}
    return errors

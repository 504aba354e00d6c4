"""Replays teach the router's cost model what it would have seen: the chosen model's settled cost, and under a warm
start every model's cost on the warm prompts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bandit_router import Router
from bandit_router.encoders import Encoder
from bandit_router.evaluation import load_table, replay
from bandit_router.models import estimate_tokens

from .test_table import priceless_joule_table


def test_replay_learns_the_chosen_models_settled_costs_and_the_warm_starts(tmp_path: Path,
                                                                           topic_encoder: Encoder) -> None:
    table = load_table(priceless_joule_table(tmp_path / "joules"))
    router = Router(table.model_cards(), encoder=topic_encoder, seed=0, policy="random")
    run = replay(table, router, 0.5, seed=0, warm_start=0.2, feedback="full")  # scores of every model are shown
    state = router.costs.state()
    counts = np.bincount(run.chosen, minlength=len(table.models))
    warm = np.setdiff1d(np.arange(len(table)), run.order)
    assert len(warm) == 12
    np.testing.assert_array_equal(state["n"].sum(axis=1), counts + len(warm))  # one call per routed prompt, and
    np.testing.assert_allclose(state["sum"].sum(axis=1),  # every model's call on each warm prompt
                               [run.cost[run.chosen == k].sum() + table.costs[warm, k].sum() for k in range(3)])
    tokens = estimate_tokens(table.prompts[0])
    for k, model in enumerate(table.models):  # joules learned directly; near each model's mean cost per call
        predicted = router.costs.predict([model], tokens)[0]
        assert 0.5 * table.costs[:, k].mean() < predicted < 1.5 * table.costs[:, k].mean()


def test_a_warm_start_tells_the_cost_of_a_model_never_routed(tmp_path: Path, topic_encoder: Encoder) -> None:
    table = load_table(priceless_joule_table(tmp_path / "joules"))
    router = Router(table.model_cards(), encoder=topic_encoder, seed=0, policy="fixed",
                    policy_settings={"model": "a"})
    replay(table, router, 0.0, seed=0, warm_start=10)
    predicted = router.costs.predict(table.models, estimate_tokens(table.prompts[0]))
    np.testing.assert_allclose(predicted, table.costs.mean(axis=0), rtol=0.15)  # not c at a's cost: 2500 J, not 40

"""Replays teach the router's cost model only what it would have seen: the chosen model's settled cost."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bandit_router import Router
from bandit_router.encoders import Encoder
from bandit_router.evaluation import load_table, replay
from bandit_router.models import estimate_tokens

from .test_table import priceless_joule_table


def test_replay_learns_costs_only_from_the_chosen_models_settled_calls(tmp_path: Path, topic_encoder: Encoder) -> None:
    table = load_table(priceless_joule_table(tmp_path / "joules"))
    router = Router(table.model_cards(), encoder=topic_encoder, seed=0, policy="random")
    run = replay(table, router, 0.5, seed=0, warm_start=0.2, feedback="full")  # scores of every model are shown
    state = router.costs.state()
    counts = np.bincount(run.chosen, minlength=len(table.models))
    np.testing.assert_array_equal(state["n"].sum(axis=1), counts)  # one call per routed prompt, none from warm start
    np.testing.assert_allclose(state["sum"].sum(axis=1), [run.cost[run.chosen == k].sum() for k in range(3)])
    tokens = estimate_tokens(table.prompts[0])
    for k, model in enumerate(table.models):  # joules learned directly; near each model's mean cost per call
        predicted = router.costs.predict([model], tokens)[0]
        assert 0.5 * table.costs[:, k].mean() < predicted < 1.5 * table.costs[:, k].mean()

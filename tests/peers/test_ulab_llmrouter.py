"""benchmarks/peers/ulab_llmrouter.py: the ulab LLMRouter routers trained in memory on a tiny table."""

from __future__ import annotations

import os
from unittest import mock

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

from benchmarks.peers import ulab_llmrouter
from bandit_router.evaluation.table import load_table
from tests.evaluation.conftest import topic_vector, write_table

pytestmark = pytest.mark.skipif(not ulab_llmrouter.available(), reason="llmrouter-lib not installed")


def test_ulab_runs_route_every_prompt_cross_fitted_reproducibly_without_pickle(tmp_path) -> None:
    table = load_table(write_table(tmp_path / "t", n=40))
    vectors = np.stack([topic_vector(p) for p in table.prompts]).astype(np.float32)
    no_pickle = [mock.patch(name, side_effect=AssertionError(name))
                 for name in ("pickle.dump", "pickle.load", "torch.save", "torch.load")]
    for patch in no_pickle:
        patch.start()
    folds = []
    choices = ulab_llmrouter._choices

    def spy(table, vectors, train, test, seed):
        folds.append((set(train.tolist()), set(test.tolist())))
        return choices(table, vectors, train, test, seed)

    try:
        with mock.patch.object(ulab_llmrouter, "_choices", spy):
            runs = ulab_llmrouter.ulab_runs(table, vectors, seed=1)
    finally:
        for patch in no_pickle:
            patch.stop()
    assert [(len(train), len(test)) for train, test in folds] == [(20, 20), (20, 20)]
    assert folds[0][1] | folds[1][1] == set(range(40)) and all(not (a & b) for a, b in folds)  # each half routed
    assert set(runs) == {"LLMRouter KNN (ulab)", "LLMRouter SVM (ulab)", "LLMRouter MLP (ulab)",
                         "LLMRouter HybridLLM (ulab)"}
    assert list(runs["LLMRouter HybridLLM (ulab)"]) == [f"threshold {t:g}" for t in ulab_llmrouter.THRESHOLDS]
    for points in runs.values():
        for score, cost in points.values():
            assert table.scores.min() <= score <= table.scores.max()
            assert table.costs.min() <= cost <= table.costs.max()
    assert runs == ulab_llmrouter.ulab_runs(table, vectors, seed=1)

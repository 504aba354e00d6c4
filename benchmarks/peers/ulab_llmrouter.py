"""The ulab LLMRouter library's KNN, MLP, SVM and HybridLLM routers (PyPI ``llmrouter-lib`` 0.4.0) as offline peers.

    LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.peers.ulab_llmrouter \\
        [--data /work/shared/data] [--sets llmrouter-9,routellm-mmlu-2,routerarena-2] [--seeds 0,1,2]

Install (``make peers-deps``): ``pip install pandas==3.1.1`` and ``pip install --no-deps llmrouter-lib==0.4.0``. Its
declared dependencies (gradio, datasets, torch-geometric, peft, ...) are not needed: these four routers import with
torch, transformers, scikit-learn and pyyaml, which bandit-router brings, plus pandas (routers needing the rest
import as ``None``).

Data
    Each router is the library's own class (``llmrouter.models.<name>.router``), built from a YAML holding only
    its ``hparam`` (the defaults of the library's ``configs/model_config_train/*.yaml`` and router READMEs) and
    an empty ``ini_model_path``. ``MetaRouter.__init__`` would read its data from files (``.pt`` embeddings are
    pickle); instead the name ``DataLoader`` in ``llmrouter.models.meta_router`` is patched, while the router is
    built, to attach in-memory data: ``query_embedding_data`` = our prompt vectors (MiniLM, as ``compare.py``
    uses everywhere; the library would use Longformer), ``routing_data_train`` = one row (query, embedding_id,
    model_name, performance = score) per train prompt and model, and ``llm_data`` = each model's ``size`` from
    models.json (for HybridLLM; where a set gives no sizes, models are ranked by mean cost instead).
    Train/test split: the full-information ridge router's cross-fitted halves (``cross_fit_folds``): each router is
    trained on one half and routes the other, then the other way round, so it routes every prompt.

Labels (the library's code, in each router's ``__init__``)
    KNN, MLP, SVM: a classifier over the best model per query, ``groupby("query")["performance"].idxmax()``
    (duplicate prompt texts merge into one query). Cost plays no part (the configs' ``metric.weights`` are
    unused). Ties go to the first row of the query; we list each query's rows cheapest model first (by mean
    cost), so a tie labels the cheapest of the tied models.
    HybridLLM (Ding et al. 2024): an ``MLPRegressor`` on the smallest vs the largest model (by ``size``, equal
    sizes in the set's model order: on llmrouter-9 qwen2.5-7b-instruct vs llama3-chatqa-1.5-70b, the latter
    scoring 0.20 on average; on the 2-model sets the cheap vs the costly model), ``router_mode`` "probabilistic": target ``sigmoid((q_small - q_large) / 0.1)``; a prompt goes to the small
    model if the clipped prediction is >= ``router_threshold``. That threshold is its cost/quality knob and is
    swept over ``THRESHOLDS`` (the library's default is 0.5).

Training and routing
    Each library trainer's own ``train()`` is run (``KNNRouterTrainer``, ``SVMRouterTrainer``, ``MLPTrainer``:
    Adam, cross-entropy, 100 epochs, batch 32; ``HybridLLMTrainer``) with the name ``save_model`` in its module
    patched to a no-op, so nothing is pickled and the fitted model stays in memory; ``ini_model_path`` is empty,
    so nothing is loaded. The routers' ``route_single``/``route_batch`` load a pickle, embed with Longformer and
    call the model's API, so routing repeats only their decision step on our vectors: ``predict`` of the fitted
    scikit-learn model (KNN, SVM), argmax of the trained ``MLPClassifierNN`` mapped through ``idx_to_model``
    (MLP), and the threshold rule above (HybridLLM). Seeds: ``torch.manual_seed(seed)`` (MLP, inside
    ``torch.random.fork_rng``) and ``random_state=seed`` (SVM, HybridLLM's MLPRegressor). Everything runs on one
    thread (torch and BLAS; KNN ``n_jobs=1``): these small models only lose time to thread contention.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import warnings
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from bandit_router.evaluation.table import RoutingTable

__all__ = ["LIBRARY", "THRESHOLDS", "available", "ulab_runs"]

LIBRARY = "llmrouter-lib"
THRESHOLDS = (0.1, 0.3, 0.5, 0.7, 0.9)
HPARAMS: dict[str, dict[str, Any]] = {  # the library's documented defaults
    "knn": {"n_neighbors": 5, "weights": "uniform", "algorithm": "auto", "leaf_size": 30, "p": 2,
            "metric": "minkowski", "n_jobs": 1},
    "svm": {"kernel": "rbf", "C": 1.0, "gamma": "scale", "probability": True},
    "mlp": {"hidden_layer_sizes": [128, 64], "activation": "relu", "lr": 0.001, "epochs": 100, "batch_size": 32,
            "alpha": 0.0001},
    "hybrid": {"hidden_layer_sizes": [128, 64], "activation": "relu", "solver": "adam", "max_iter": 300},
}


def available() -> bool:
    """Whether llmrouter-lib is importable."""
    try:
        import llmrouter.models.meta_router  # noqa: F401
    except ImportError:
        return False
    return True


class _MemoryLoader:
    """Stands in for ``llmrouter.data.DataLoader``: attaches in-memory data instead of reading files."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def __call__(self, project_root: str) -> "_MemoryLoader":
        return self

    def load_data(self, config: dict, obj_ref: Any) -> None:
        for name, value in self.data.items():
            setattr(obj_ref, name, value)


def _sizes(table: RoutingTable) -> dict[str, dict[str, str]]:
    """llm_data for HybridLLM: models.json sizes, or (if any is missing) the mean-cost rank as a size."""
    if all(str(table.model_info.get(m, {}).get("size", "")).upper().endswith("B") for m in table.models):
        return {m: {"size": str(table.model_info[m]["size"])} for m in table.models}
    rank = np.argsort(np.argsort(table.costs.mean(axis=0), kind="stable"), kind="stable")
    return {m: {"size": f"{r + 1}B"} for m, r in zip(table.models, rank)}


def _build(cls: type, cfg: dict, data: dict[str, Any], folder: Path) -> Any:
    """The library's router `cls` built from `cfg` with `data` attached in memory."""
    import yaml

    path = folder / "router.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with mock.patch("llmrouter.models.meta_router.DataLoader", _MemoryLoader(data)):
        return cls(yaml_path=str(path))


def _train(trainer: Any) -> None:
    """Run a library trainer's own train() with its pickle save replaced by a no-op."""
    module = __import__(type(trainer).__module__, fromlist=["save_model"])
    with mock.patch.object(module, "save_model", lambda *args, **kwargs: True):
        trainer.train()


def _choices(table: RoutingTable, vectors: np.ndarray, train: np.ndarray, test: np.ndarray,
             seed: int) -> dict[tuple[str, str], list[str]]:
    """(router label, point) -> the model each router trained on the `train` prompts picks for each `test` one."""
    from llmrouter.models.hybrid_llm.router import HybridLLMRouter
    from llmrouter.models.hybrid_llm.trainer import HybridLLMTrainer
    from llmrouter.models.knnrouter.router import KNNRouter
    from llmrouter.models.knnrouter.trainer import KNNRouterTrainer
    from llmrouter.models.mlprouter.router import MLPRouter
    from llmrouter.models.mlprouter.trainer import MLPTrainer
    from llmrouter.models.svmrouter.router import SVMRouter
    from llmrouter.models.svmrouter.trainer import SVMRouterTrainer
    import pandas as pd
    import torch

    order = np.argsort(table.costs.mean(axis=0), kind="stable")  # a tie labels the cheapest tied model
    routing = pd.DataFrame([{"query": table.prompts[i], "embedding_id": int(i), "model_name": table.models[k],
                             "performance": float(table.scores[i, k])} for i in train for k in order])
    data = {"routing_data_train": routing, "query_embedding_data": torch.from_numpy(np.ascontiguousarray(vectors)),
            "llm_data": _sizes(table), "query_data_train": None, "query_data_test": None,
            "routing_data_test": None, "llm_embedding_data": None}
    X = np.asarray(vectors[test])
    out: dict[tuple[str, str], list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = {"ini_model_path": "", "save_model_path": str(folder / "unused" / "model.pkl")}

        knn = _build(KNNRouter, {"hparam": HPARAMS["knn"], "model_path": paths}, data, folder)
        _train(KNNRouterTrainer(knn, device="cpu"))
        out["LLMRouter KNN (ulab)", "default"] = list(knn.knn_model.predict(X))

        svm = _build(SVMRouter, {"hparam": {**HPARAMS["svm"], "random_state": seed}, "model_path": paths},
                     data, folder)
        _train(SVMRouterTrainer(svm, device="cpu"))
        out["LLMRouter SVM (ulab)", "default"] = list(svm.svm_model.predict(X))

        with torch.random.fork_rng():
            torch.manual_seed(seed)
            mlp = _build(MLPRouter, {"hparam": HPARAMS["mlp"], "model_path": paths}, data, folder)
            trainer = MLPTrainer(mlp, device="cpu")
            _train(trainer)
        picked = trainer.model.predict(torch.from_numpy(X).float()).tolist()
        out["LLMRouter MLP (ulab)", "default"] = [mlp.idx_to_model[i] for i in picked]

        hybrid = _build(HybridLLMRouter, {"router_mode": "probabilistic", "router_tau": 0.1,
                                          "router_threshold": 0.5, "model_path": paths,
                                          "hparam": {**HPARAMS["hybrid"], "random_state": seed}}, data, folder)
        _train(HybridLLMTrainer(hybrid, device="cpu"))
        prob_small = np.clip(hybrid.mlp_model.predict(X), 0.0, 1.0)
        for t in THRESHOLDS:
            out["LLMRouter HybridLLM (ulab)", f"threshold {t:g}"] = [
                hybrid.small_model_name if p >= t else hybrid.large_model_name for p in prob_small]
    return out


def ulab_runs(table: RoutingTable, vectors: np.ndarray, seed: int) -> dict[str, dict[str, tuple[float, float]]]:
    """Router label -> point -> (mean score, mean cost) over every prompt, each half routed by the router trained
    on the other (the full-info ridge router's folds, `cross_fit_folds`)."""
    import torch
    from threadpoolctl import threadpool_limits

    from bandit_router.evaluation.references import cross_fit_folds

    column = {m: k for k, m in enumerate(table.models)}
    chosen: dict[tuple[str, str], np.ndarray] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: threads only contend on a shared machine (6x slower at 2)
    try:
        with contextlib.redirect_stdout(io.StringIO()), threadpool_limits(1), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # scikit-learn 1.9 deprecates SVC(probability=True)
            for train, test in cross_fit_folds(len(table), seed):
                for key, names in _choices(table, vectors, train, test, seed).items():
                    chosen.setdefault(key, np.empty(len(table), dtype=int))[test] = [column[n] for n in names]
    finally:
        torch.set_num_threads(threads)
    rows = np.arange(len(table))
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for (label, point), picks in chosen.items():
        out.setdefault(label, {})[point] = (float(table.scores[rows, picks].mean()),
                                            float(table.costs[rows, picks].mean()))
    return out


def main() -> None:
    """Print every point per set and seed as score @ cost % of the best single model, beside the full-info ridge
    router at dial 0 on the same folds."""
    import argparse

    from bandit_router.evaluation.references import full_info_ridge_run
    from bandit_router.evaluation.table import load_table
    from benchmarks.peers.compare import SETS, vectors_of

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--data", default="/work/shared/data")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    for name in args.sets.split(","):
        table = load_table(Path(args.data) / name, invalid_rows=SETS[name])
        vectors = vectors_of(table)
        ref = float(table.costs[:, table.best].mean()) / 100
        rows: dict[str, list[tuple[float, float]]] = {}
        for seed in seeds:
            ridge = full_info_ridge_run(table, vectors, 0.0, seed)
            rows.setdefault("full-info ridge dial 0", []).append((ridge.mean_score, ridge.mean_cost / ref))
            for label, points in ulab_runs(table, vectors, seed).items():
                for point, (score, cost) in points.items():
                    rows.setdefault(f"{label} {point}", []).append((score, cost / ref))
        print(f"## {name} (seeds {args.seeds})")
        for label, values in rows.items():
            per_seed = "  ".join(f"{s:.3f}@{c:.0f}%" for s, c in values)
            mean = np.mean(values, axis=0)
            print(f"{label}: {per_seed}  mean {mean[0]:.3f}@{mean[1]:.0f}%", flush=True)


if __name__ == "__main__":
    main()

"""Sweeps: replay every policy x dial (or spend target) x seed through a fresh Router, in worker processes; and the
references."""

from __future__ import annotations

import time
import importlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import ConfigError
from ..router import Router
from ..spend import SpendTarget
from ..tasks import TEXT_WEIGHT, TaskHints
from .embeddings import lookup_encoder
from .references import full_info_ridge_run, oracle_run, single_model_runs
from .replay import ReplayRun, replay
from .table import RoutingTable

__all__ = ["SweepSpec", "run_sweep", "reference_runs", "check_spends"]


@dataclass(frozen=True)
class SweepSpec:
    """What to replay: registered policy names (with optional settings per name), dials and seeds; `spends`,
    shares of the best single model's mean cost, add a run per policy, share and seed routed at a SpendTarget of
    that mean cost per prompt. With `task_hints`, each Router declares the table's task labels (with
    `text_weight`) and is told each prompt's task. `warm_start` (prompts, or a share of them) and `feedback` are
    `replay`'s."""

    policies: Sequence[str]
    dials: Sequence[float]
    seeds: Sequence[int]
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    warm_start: float = 0.0
    feedback: str = "bandit"
    task_hints: bool = False
    text_weight: float = TEXT_WEIGHT
    spends: Sequence[float] = ()
    modules: Sequence[str] = ()  # imported in each worker first: they register the policies the sweep names

    def tasks(self) -> Iterator[tuple[str, float | None, int, float | None]]:
        """(policy, dial, seed, spend) per run: each policy's dial runs (spend None), then its spend-target runs
        (dial None)."""
        for policy in self.policies:
            for dial in self.dials:
                for seed in self.seeds:
                    yield policy, float(dial), int(seed), None
            for spend in self.spends:
                for seed in self.seeds:
                    yield policy, None, int(seed), float(spend)


_worker: dict[str, Any] = {}


def check_spends(table: RoutingTable, spends: Sequence[float], field: str = "spends") -> None:
    """ConfigError naming `field` when there are spend targets but the best single model (the unit they are shares
    of) has a mean cost of 0."""
    best = table.best
    if spends and table.costs[:, best].mean() <= 0:
        raise ConfigError(f"{field} gives spend targets as shares of the best single model's mean cost per prompt, "
                          f"but the best model, {table.models[best]!r}, has a mean cost of 0 {table.cost_unit}: "
                          "no share of it is a target (compare routers with dials instead)")


def _init_worker(table: RoutingTable, vectors: np.ndarray, encoder_name: str, spec: SweepSpec) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # the arrays are small: one BLAS thread per worker beats threads fighting for the cores
    for module in spec.modules:  # a spawned worker has not imported them (a forked one has)
        importlib.import_module(module)
    _worker.update(table=table, vectors=vectors, encoder_name=encoder_name, spec=spec)


def _run_task(policy: str, dial: float | None, seed: int, spend: float | None) -> tuple[ReplayRun, float]:
    table, vectors, spec = _worker["table"], _worker["vectors"], _worker["spec"]
    started = time.perf_counter()
    router = Router(table.model_cards(), policy=policy, policy_settings=spec.settings.get(policy),
                    encoder=lookup_encoder(table, vectors, _worker["encoder_name"]), seed=seed,
                    tasks=TaskHints(sorted(set(table.tasks) - {""}), spec.text_weight) if spec.task_hints else (),
                    cost_weight=0.0 if spend is None else SpendTarget(spend * table.costs[:, table.best].mean()))
    run = replay(table, router, dial, seed, policy_label=policy, warm_start=spec.warm_start, feedback=spec.feedback)
    return replace(run, spend=spend), time.perf_counter() - started


def run_sweep(table: RoutingTable, vectors: np.ndarray, encoder_name: str, spec: SweepSpec, workers: int = 2,
              on_done: Callable[[ReplayRun, float], None] | None = None) -> list[tuple[ReplayRun, float]]:
    """Replay `table` once per task of `spec` (policy x dial x seed, then policy x spend x seed), each through a
    new Router; returns (run, seconds) pairs in task order. `workers` > 1 runs them in that many processes;
    `on_done` is called as each run ends."""
    check_spends(table, spec.spends)
    tasks = list(spec.tasks())
    results: dict[int, tuple[ReplayRun, float]] = {}
    if workers <= 1:
        from threadpoolctl import threadpool_limits

        _worker.update(table=table, vectors=vectors, encoder_name=encoder_name, spec=spec)
        with threadpool_limits(1):
            for i, task in enumerate(tasks):
                results[i] = _run_task(*task)
                if on_done is not None:
                    on_done(*results[i])
    else:
        with ProcessPoolExecutor(workers, initializer=_init_worker,
                                 initargs=(table, vectors, encoder_name, spec)) as pool:
            futures = {pool.submit(_run_task, *task): i for i, task in enumerate(tasks)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                if on_done is not None:
                    on_done(*results[futures[future]])
    return [results[i] for i in range(len(tasks))]


def reference_runs(table: RoutingTable, vectors: np.ndarray, dials: Sequence[float],
                   seeds: Sequence[int]) -> list[ReplayRun]:
    """Each single model and the oracle at every dial (seed 0; they do not vary), and the full-information
    ridge router at every dial and seed (the seed draws its train/test halves)."""
    runs: list[ReplayRun] = []
    for dial in dials:
        runs += single_model_runs(table, float(dial))
        runs.append(oracle_run(table, float(dial)))
        runs += [full_info_ridge_run(table, vectors, float(dial), int(seed)) for seed in seeds]
    return runs

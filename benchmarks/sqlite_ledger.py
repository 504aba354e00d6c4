"""How far one SQLite file goes as the budget ledger of several service processes on one machine.

P processes (spawned, started together) each reserve a $0.03 worst case, wait `pause` (the upstream call), and
settle it at $0.01-0.03, for `seconds`, on one `SQLiteBudget` with a limit no run reaches. Reports calls per
second in all, each process's share of the calls, and the reserve latency (p50, p99, max). Writes
docs/sqlite_ledger_results.md.

    PYTHONPATH=. .venv/bin/python benchmarks/sqlite_ledger.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from bandit_router.service.ledger import SQLiteBudget

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = (1, 2, 4)
PAUSES = (0.0, 0.002, 0.02)  # seconds per upstream call


def spend(path: str, seed: int, pause: float, seconds: float, start, results) -> None:
    """One process's loop; puts (calls, reserve latencies in seconds) on `results`."""
    budget, rng, latencies = SQLiteBudget(path, 1e6), random.Random(seed), []
    start.wait()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        began = time.perf_counter()
        hold = budget.reserve(0.03)
        latencies.append(time.perf_counter() - began)
        if pause:
            time.sleep(pause)
        budget.settle(hold, rng.choice([0.01, 0.02, 0.03]))
    results.put(latencies)


def run(processes: int, pause: float, seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "state.db")
        SQLiteBudget(path, 1e6)  # the tables, before the processes race to create them
        context = multiprocessing.get_context("spawn")
        start, results = context.Barrier(processes), context.Queue()
        workers = [context.Process(target=spend, args=(path, seed, pause, seconds, start, results))
                   for seed in range(processes)]
        for worker in workers:
            worker.start()
        latencies = [results.get(timeout=seconds + 120) for _ in workers]
        for worker in workers:
            worker.join(timeout=30)
    calls = [len(own) for own in latencies]
    every = np.concatenate(latencies) * 1e3
    return {"processes": processes, "pause": pause, "rate": sum(calls) / seconds,
            "shares": sorted(c / sum(calls) for c in calls), "p50": np.percentile(every, 50),
            "p99": np.percentile(every, 99), "max": every.max()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds each run lasts (default 3)")
    args = parser.parse_args()
    rows = []
    for pause in PAUSES:
        for processes in PROCESSES:
            row = run(processes, pause, args.seconds)
            print(row, flush=True)
            rows.append(row)
    lines = [
        "# One SQLite file as the service's shared budget ledger",
        "",
        f"Measured {datetime.date.today()} on this machine (2 cores) with",
        "",
        "```",
        f"PYTHONPATH=. .venv/bin/python benchmarks/sqlite_ledger.py --seconds {args.seconds:g}",
        "```",
        "",
        "P processes each reserve a $0.03 worst case, wait the pause (the upstream call), and settle it, for "
        f"{args.seconds:g} s; each reserve and each settle is one `BEGIN IMMEDIATE` transaction "
        "(synchronous=FULL). Shares: each process's fraction of the calls, lowest to highest.",
        "",
        "| pause per call | processes | calls/s in all | shares of the calls | reserve p50 / p99 / max (ms) |",
        "| ---: | ---: | ---: | --- | --- |",
    ]
    for r in rows:
        shares = " ".join(f"{s:.2f}" for s in r["shares"])
        lines.append(f"| {r['pause'] * 1e3:g} ms | {r['processes']} | {r['rate']:,.0f} | {shares} | "
                     f"{r['p50']:.2f} / {r['p99']:.2f} / {r['max']:.1f} |")
    lines += [
        "",
        "With no pause the processes do nothing but write. SQLite's busy handler makes a waiting process sleep "
        "(1 ms, then longer) and retry, while the process that just committed begins again at once: one or two "
        "processes take nearly all the calls and the others wait up to seconds for one reserve (the max above). "
        "With any pause between a process's calls, here 2 ms, far shorter than a model call, the shares "
        "are even. A service process reserves once per upstream call, so only a machine whose processes together "
        "start thousands of calls a second would see the uneven case.",
        "",
    ]
    (ROOT / "docs" / "sqlite_ledger_results.md").write_text("\n".join(lines))
    print("wrote docs/sqlite_ledger_results.md")


if __name__ == "__main__":
    main()

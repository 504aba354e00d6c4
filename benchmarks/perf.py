"""Routing overhead on this machine, per prompt encoder: encoding (new, cached), the decision, feedback updates,
memory per model and per decision waiting for feedback, the latency the router adds to a LiteLLM call
(mock_response, so no network), 50 concurrent `acomplete` calls against one (with the event loop's longest stall),
and the cold start (import to first decision).

    LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/perf.py \
        --out benchmarks/results

Writes OUT/perf.json and OUT/perf.md (the section docs/BENCHMARKS.md includes). The first encoder of `--encoders`
is the one the targets are judged on (the router's default).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import platform
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

from bandit_router import Model, Router
from bandit_router.encoders import DEFAULT_ENCODER, encoder_by_name
from bandit_router.evaluation import bundled_table_path, load_table
from bandit_router.static_encoder import STATIC_ENCODER

MODEL_COUNTS = (2, 10, 50)
DEFAULT_POLICY = inspect.signature(Router).parameters["policy"].default
WARM, UPDATES = 5_000, 5_000  # ratings a router has before the feedback timing, and ratings timed
TARGETS = {"decision_p50_ms": 1.0, "encode_decide_p50_ms": 3.0, "added_p50_ms": 3.0, "feedback_per_s": 5000.0,
           "concurrent_ratio": 2.0, "stall_ms": 50.0, "cold_start_share": 0.5}
CALL_DELAY_S = 0.5  # mock_delay of each call in the concurrency test: a short real LLM call
CONCURRENT = 50
WAITING = 20_000  # decisions routed to measure the memory of one waiting for feedback
SHORT = {DEFAULT_ENCODER: "MiniLM", STATIC_ENCODER: "static"}


def cards(k: int) -> list[Model]:
    """k models with explicit prices and limits, so no cost-map lookup is timed."""
    return [Model(f"openai/model-{i}", input_cost_per_token=(i + 1) * 1e-7, output_cost_per_token=(i + 1) * 4e-7,
                  context_window=128_000, max_output_tokens=4_096, supports_tools=True, api_key="sk-bench")
            for i in range(k)]


def prompts_of_50_words(n: int) -> list[str]:
    """The first 50 words of real prompts (the bundled llmrouter-9 set) that have at least 50."""
    long = [" ".join(p.split()[:50]) for p in load_table(bundled_table_path()).prompts if len(p.split()) >= 50]
    return list(dict.fromkeys(long))[:n]


class Fresh:
    """Hands out prompts no encoder in this process has seen: each 50-word prompt once, then with a counter."""

    def __init__(self, prompts: list[str]) -> None:
        self.prompts, self.i = prompts, 0

    def take(self, n: int) -> list[str]:
        out = [f"{self.prompts[(self.i + j) % len(self.prompts)]} ({(self.i + j) // len(self.prompts)})"
               if self.i + j >= len(self.prompts) else self.prompts[self.i + j] for j in range(n)]
        self.i += n
        return out


def percentiles(times: list[tuple[float, float]]) -> dict[str, float]:
    """p50 and p99 of wall-clock times, and the p50 of the CPU time the process spent (what a request would
    take on an idle machine; on a busy one the wall clock also counts waiting for a core)."""
    wall, cpu = (np.array(t) * 1e3 for t in zip(*times))
    return {"p50_ms": float(np.percentile(wall, 50)), "p99_ms": float(np.percentile(wall, 99)),
            "cpu_p50_ms": float(np.percentile(cpu, 50)), "n": len(wall)}


def timed(fn, *args, **kwargs) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds of the whole process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args, **kwargs)
    return time.perf_counter() - wall, time.process_time() - cpu


def bench_encoding(encoder, fresh: Fresh, n: int) -> dict[str, object]:
    """Loading, then `n` new prompts one at a time, then the same prompts again from the cache."""
    load = timed(encoder, "warm-up: loads the model")[0]
    prompts = fresh.take(n)
    cold = [timed(encoder, p) for p in prompts]
    cached = [timed(encoder, p) for p in prompts]
    return {"load_s": load, "cold": percentiles(cold), "cached": percentiles(cached)}


def trained_router(k: int, encoder, policy: str, prompts: list[str]) -> Router:
    router = Router(cards(k), policy=policy, encoder=encoder, seed=0)
    rng = np.random.default_rng(0)
    for p in prompts:  # some learned state, as a deployed router has
        router.feedback(router.route(p).route_id, float(rng.random()))
    return router


def bench_routing(encoder, prompts: list[str], fresh: Fresh | None, n: int, policy: str) -> dict[str, object]:
    """Per model count: route with cached embeddings, feedback throughput (UPDATES ratings after WARM, so the
    periodic work of a policy, such as shrunk-linucb's empirical Bayes at each doubling of its ratings, is
    counted at its long-run rate), and (with `fresh`) route on `n` new prompts."""
    out: dict[str, dict[str, object]] = {}
    for k in MODEL_COUNTS:
        router = trained_router(k, encoder, policy, [prompts[i % len(prompts)] for i in range(WARM)])
        decision = [timed(router.route, p, cost_weight=0.2) for p in prompts]  # embeddings cached
        routed = [router.route(prompts[i % len(prompts)], cost_weight=0.2).route_id for i in range(UPDATES)]
        scores = np.random.default_rng(1).random(len(routed))
        wall, cpu = time.perf_counter(), time.process_time()
        for route_id, score in zip(routed, scores):
            router.feedback(route_id, float(score))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        out[str(k)] = {"decision": percentiles(decision), "feedback_per_s": len(routed) / wall,
                       "feedback_per_cpu_s": len(routed) / cpu}
        if fresh is not None:
            out[str(k)]["encode_decide"] = percentiles([timed(router.route, p, cost_weight=0.2)
                                                        for p in fresh.take(n)])
    return out


def bench_memory(encoder) -> dict[str, float]:
    """Bytes a router holds per model (policy state), from the traced allocations of a 10- and a 50-model router;
    and per decision waiting for feedback (10 models), from those of routing WAITING new prompts once the
    encoder's cache is full (random vectors of the encoder's length stand in for its encoding)."""
    sizes = {}
    for k in (10, 50):
        tracemalloc.start()
        router = Router(cards(k), policy=DEFAULT_POLICY, encoder=encoder, seed=0)
        sizes[k] = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del router
    rng = np.random.default_rng(0)
    router = Router(cards(10), policy=DEFAULT_POLICY, seed=0,
                    encoder=lambda text: rng.standard_normal(encoder.dim).astype(np.float32))
    tracemalloc.start()  # before the warm-up, so that the cache entries evicted below were traced too
    for i in range(router.context.encoder.cache_size):
        router.route(f"warm-up prompt {i}")
    before = tracemalloc.get_traced_memory()[0]
    for i in range(WAITING):
        router.route(f"new prompt {i}")
    per_decision = (tracemalloc.get_traced_memory()[0] - before) / WAITING
    tracemalloc.stop()
    return {"bytes_per_model": (sizes[50] - sizes[10]) / 40, "bytes_per_waiting": per_decision, "dim": encoder.dim,
            "max_pending": router.feedback_settings.max_pending}


def bench_litellm(encoder, prompts: list[str], fresh: Fresh, calls: int) -> dict[str, object]:
    """The same mocked LiteLLM call made directly and through Router.complete (cached and new prompts),
    interleaved."""
    import litellm

    router = trained_router(10, encoder, DEFAULT_POLICY, prompts[:50])
    model = router.models["openai/model-0"]
    for p in prompts[:5]:  # warm up LiteLLM's first-call work on both paths
        litellm.completion(messages=[{"role": "user", "content": p}], mock_response="ok", **model.call_kwargs())
        router.complete(p, mock_response="ok")
    direct, routed, routed_fresh = [], [], []
    for i, new in enumerate(fresh.take(calls)):
        p = prompts[i % len(prompts)]
        direct.append(timed(litellm.completion, messages=[{"role": "user", "content": p}], mock_response="ok",
                            **model.call_kwargs()))
        routed.append(timed(router.complete, p, mock_response="ok"))
        routed_fresh.append(timed(router.complete, new, mock_response="ok"))
    d, r, f = percentiles(direct), percentiles(routed), percentiles(routed_fresh)
    return {"direct": d, "routed_cached_embedding": r, "routed_new_prompt": f,
            "added_p50_ms_cached": r["p50_ms"] - d["p50_ms"], "added_p50_ms_new_prompt": f["p50_ms"] - d["p50_ms"]}


async def _watched(calls) -> tuple[float, float]:
    """(seconds until every call is done, the event loop's longest stall in seconds) while `calls` run."""
    done, stall = False, 0.0

    async def watch() -> None:
        nonlocal stall
        while not done:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            stall = max(stall, time.perf_counter() - before - 0.001)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0)
    started = time.perf_counter()
    await asyncio.gather(*calls)
    took = time.perf_counter() - started
    done = True
    await watcher
    return took, stall


def bench_concurrency(encoder, prompts: list[str], fresh: Fresh, rounds: int) -> dict[str, object]:
    """One call on a new prompt against CONCURRENT at once on new prompts, each a mocked LiteLLM call that answers
    after CALL_DELAY_S, through `Router.acomplete` and directly (`litellm.acompletion`, the floor); `rounds` of
    each, interleaved; medians of the times, and the longest event-loop stall seen."""
    import litellm

    router = trained_router(10, encoder, DEFAULT_POLICY, prompts[:50])
    card = router.models["openai/model-0"]
    paths = {"router": lambda p: router.acomplete(p, mock_response="ok", mock_delay=CALL_DELAY_S),
             "direct": lambda p: litellm.acompletion(messages=[{"role": "user", "content": p}], mock_response="ok",
                                                     mock_delay=CALL_DELAY_S, **card.call_kwargs())}

    async def run() -> dict[str, list[float]]:
        for call in paths.values():  # warm up LiteLLM's async path
            await asyncio.gather(*(call(p) for p in fresh.take(4)))
        out: dict[str, list[float]] = {}
        for _ in range(rounds):
            for path, call in paths.items():
                for label, n in (("one", 1), ("many", CONCURRENT)):
                    took, stall = await _watched([call(p) for p in fresh.take(n)])
                    out.setdefault(f"{path}_{label}", []).append(took)
                    out.setdefault(f"{path}_stall_{label}", []).append(stall)
        return out

    raw = asyncio.run(run())
    result: dict[str, object] = {"rounds": rounds, "raw": raw}
    for path in paths:
        one, many = float(np.median(raw[f"{path}_one"])), float(np.median(raw[f"{path}_many"]))
        result[path] = {"one_s": one, "many_s": many, "ratio": many / one,
                        "stall_ms_max": 1e3 * max(raw[f"{path}_stall_many"]),
                        "stall_ms_median": 1e3 * float(np.median(raw[f"{path}_stall_many"]))}
    return result


COLD_START = """
import time
started = time.perf_counter()
from bandit_router import Model, Router
models = [Model(f"openai/model-{i}", input_cost_per_token=1e-7, output_cost_per_token=4e-7, context_window=128_000,
                max_output_tokens=4_096, supports_tools=True, api_key="sk-bench") for i in range(10)]
Router(models, encoder=ENCODER, seed=0).route("How do I reverse a list in Python without copying it?")
decided = time.perf_counter()
import litellm
print(decided - started, time.perf_counter() - decided)
"""


def bench_cold_start(name: str, repeats: int) -> dict[str, object]:
    """Seconds from `import bandit_router` to the first routed decision in a new process (the encoder's files
    already on disk; the router defers importing LiteLLM to its first call), then to import LiteLLM; `repeats`
    times."""
    code = COLD_START.replace("ENCODER", repr(name))
    runs = [[float(v) for v in subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                               text=True).stdout.split()[-2:]] for _ in range(repeats)]
    return {"median_s": float(np.median([r[0] for r in runs])), "runs_s": [r[0] for r in runs],
            "litellm_import_median_s": float(np.median([r[1] for r in runs]))}


def markdown(result: dict) -> str:
    encoders = list(result["encoders"])
    default = encoders[0]
    m = result["machine"]
    verdict = lambda ok: "yes" if ok else "**no**"  # noqa: E731
    baseline = result["encoders"].get(DEFAULT_ENCODER, {}).get("cold_start", {}).get("median_s")
    lines = [f"Measured on {m['cpus']} CPUs ({m['processor'] or m['machine']}), Python {m['python']}, "
             f"OPENBLAS_NUM_THREADS={m['openblas_threads']}, {result['seconds']:.0f} s in all. The machine was shared "
             f"with other work: load average {m['load_before'][0]:.1f} before and {m['load_after'][0]:.1f} after the "
             f"run, on 2 cores. Wall-clock times count waiting for a core; the CPU column is the CPU time the process "
             f"spent per request (all its threads), close to what an idle machine would show. Targets are judged on "
             f"the wall clock, for the router's default encoder ({SHORT.get(default, default)}); the other "
             f"encoder's rows are for comparison.", "",
             "| target | encoder | measured (wall) | CPU time | goal | met |", "|---|---|---:|---:|---:|---|"]
    for name in encoders:
        r = result["encoders"][name]
        ten, llm, cold = r["routing"][DEFAULT_POLICY]["10"], r["litellm"], r["cold_start"]
        con, floor = r["concurrency"]["router"], r["concurrency"]["direct"]
        short = SHORT.get(name, name)
        judged = name == default
        check = (lambda ok: verdict(ok)) if judged else (lambda ok: "(" + ("yes" if ok else "no") + ")")
        share = cold["median_s"] / baseline if baseline else float("nan")
        lines += [
            f"| decision p50, 10 models, cached embedding ({DEFAULT_POLICY}) | {short} | "
            f"{ten['decision']['p50_ms']:.3f} ms | "
            f"{ten['decision']['cpu_p50_ms']:.3f} ms | <= 1 ms | "
            f"{check(ten['decision']['p50_ms'] <= TARGETS['decision_p50_ms'])} |",
            f"| encode + decide p50, new 50-word prompt, 10 models ({DEFAULT_POLICY}) | {short} | "
            f"{ten['encode_decide']['p50_ms']:.2f} ms | {ten['encode_decide']['cpu_p50_ms']:.2f} ms | <= 3 ms | "
            f"{check(ten['encode_decide']['p50_ms'] <= TARGETS['encode_decide_p50_ms'])} |",
            f"| latency added to a LiteLLM call, p50, new 50-word prompt | {short} | "
            f"{llm['added_p50_ms_new_prompt']:.2f} ms | "
            f"{llm['routed_new_prompt']['cpu_p50_ms'] - llm['direct']['cpu_p50_ms']:.2f} ms | <= 3 ms | "
            f"{check(llm['added_p50_ms_new_prompt'] <= TARGETS['added_p50_ms'])} |",
            f"| {CONCURRENT} concurrent `acomplete` (new prompts) / one, calls of {CALL_DELAY_S} s | {short} | "
            f"{con['ratio']:.2f}x ({con['many_s']:.2f} s / {con['one_s']:.2f} s; direct LiteLLM "
            f"{floor['ratio']:.2f}x) | | <= 2x | "
            f"{check(con['ratio'] <= TARGETS['concurrent_ratio'])} |",
            f"| event loop's longest stall during the {CONCURRENT} calls (worst of {r['concurrency']['rounds']} rounds)"
            f" | {short} | {con['stall_ms_max']:.1f} ms (median round {con['stall_ms_median']:.1f} ms; direct "
            f"LiteLLM {floor['stall_ms_max']:.1f} ms) | | <= 50 ms | "
            f"{check(con['stall_ms_max'] <= TARGETS['stall_ms'])} |",
            f"| cold start: `import` to first routed decision, median of {len(cold['runs_s'])} | {short} | "
            f"{cold['median_s']:.2f} s ({share:.0%} of MiniLM's) | | <= 50% of MiniLM's | "
            f"{check(share <= TARGETS['cold_start_share']) if name != DEFAULT_ENCODER else 'n/a'} |",
            f"| feedback updates per second after {WARM:,} ratings, 10 models ({DEFAULT_POLICY}) | {short} | "
            f"{ten['feedback_per_s']:,.0f} | "
            f"{ten['feedback_per_cpu_s']:,.0f} | >= 5,000 | "
            f"{check(ten['feedback_per_s'] >= TARGETS['feedback_per_s'])} |"]
    lines += ["", "**Routing overhead per request** (ms). Decision: `Router.route` with the prompt's embedding "
              "already cached (encoder LRU hit + policy + bookkeeping). Encode + decide: `Router.route` on a 50-word "
              "prompt it has never seen.", "",
              "| encoder | dim | policy | models | decision p50 | decision p99 | decision CPU p50 | "
              "encode + decide p50 | encode + decide p99 | feedback updates/s (wall) | per CPU-second |",
              "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in encoders:
        r = result["encoders"][name]
        for policy, by_k in r["routing"].items():
            for k, row in by_k.items():
                both = row.get("encode_decide")
                encode = f"{both['p50_ms']:.2f} | {both['p99_ms']:.2f}" if both else "- | -"
                lines.append(f"| {SHORT.get(name, name)} | {r['memory']['dim']} | {policy} | {k} | "
                             f"{row['decision']['p50_ms']:.3f} | {row['decision']['p99_ms']:.3f} | "
                             f"{row['decision']['cpu_p50_ms']:.3f} | {encode} | {row['feedback_per_s']:,.0f} | "
                             f"{row['feedback_per_cpu_s']:,.0f} |")
    lines += ["", "**Encoding alone** (one 50-word prompt per call), **memory per model** "
              f"({DEFAULT_POLICY}, traced "
              "allocations of a 50- and a 10-model router: the per-model ridge statistics A, A^-1, b, theta) and "
              f"**memory per decision waiting for feedback** (10 models, traced allocations of {WAITING:,} more routed "
              "prompts once the encoder's cache is full: the prompt vector and its routing context; the last column is "
              "that times the default `FeedbackSettings.max_pending`, the most a router holds when answers go "
              "unrated):", "",
              "| encoder | new prompt p50 (CPU) | p99 | cached p50 | loading (first encode) | memory per model | "
              "per waiting decision | at max_pending |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in encoders:
        enc, mem = result["encoders"][name]["encoding"], result["encoders"][name]["memory"]
        lines.append(f"| {SHORT.get(name, name)} | {enc['cold']['p50_ms']:.3f} ms ({enc['cold']['cpu_p50_ms']:.3f}"
                     f" ms) | {enc['cold']['p99_ms']:.3f} ms | {enc['cached']['p50_ms'] * 1e3:.1f} us | "
                     f"{enc['load_s']:.2f} s | {mem['bytes_per_model'] / 2**20:.2f} MiB | "
                     f"{mem['bytes_per_waiting'] / 2**10:.1f} KiB | "
                     f"{mem['bytes_per_waiting'] * mem['max_pending'] / 2**20:,.0f} MiB |")
    lines += ["", "**Latency added to a LiteLLM call**: the same `litellm.completion(..., mock_response=\"ok\")` made "
              "directly and through `Router.complete` (10 models, linucb), interleaved in one run (ms):", "",
              "| encoder | path | p50 | p99 | CPU p50 |", "|---|---|---:|---:|---:|"]
    for name in encoders:
        llm = result["encoders"][name]["litellm"]
        for label, key in (("direct litellm.completion", "direct"),
                           ("Router.complete, cached embedding", "routed_cached_embedding"),
                           ("Router.complete, new 50-word prompt", "routed_new_prompt")):
            row = llm[key]
            lines.append(f"| {SHORT.get(name, name)} | {label} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
                         f"{row['cpu_p50_ms']:.2f} |")
    lines += ["", f"**Concurrency**: new 50-word prompts, each a LiteLLM mock call that answers after "
              f"{CALL_DELAY_S} s (`mock_delay`): one call, then {CONCURRENT} at once with `asyncio.gather`, through "
              f"`Router.acomplete` and directly through `litellm.acompletion` (the floor: LiteLLM's own work), "
              f"{result['encoders'][default]['concurrency']['rounds']} rounds interleaved, median times, longest "
              f"stall over all rounds. `acomplete` awaits `Encoder.aencode`, which batches the prompts that arrive "
              f"within 2 ms and encodes them in a worker thread; a 1 ms ticker records the event loop's longest "
              f"stall.", "", "| encoder | path | one call | 50 calls | ratio | longest stall | median round's |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for name in encoders:
        for path in ("router", "direct"):
            con = result["encoders"][name]["concurrency"][path]
            lines.append(f"| {SHORT.get(name, name)} | {path} | {con['one_s']:.3f} s | {con['many_s']:.3f} s | "
                         f"{con['ratio']:.2f}x | {con['stall_ms_max']:.1f} ms | {con['stall_ms_median']:.1f} ms |")
    lines += ["", "**Cold start**: a new Python process imports `bandit_router`, builds a 10-model router with "
              "`encoder=<name>` and routes one prompt (the encoder's files already on disk; the static table is "
              "distilled once per machine, on first use):", ""]
    for name in encoders:
        cold = result["encoders"][name]["cold_start"]
        lines.append(f"- {SHORT.get(name, name)}: median {cold['median_s']:.2f} s "
                     f"(runs: {', '.join(f'{s:.2f}' for s in cold['runs_s'])} s); importing LiteLLM afterwards (the "
                     f"router does so at its first call, or when a model's card is read from LiteLLM's cost map): "
                     f"median {cold['litellm_import_median_s']:.2f} s more.")
    if "distill_s" in result:
        lines.append(f"- distilling the static table from the installed MiniLM (first use on a machine): "
                     f"{result['distill_s']:.0f} s wall.")
    return "\n".join(lines + [""])


def bench_distill() -> float:
    """Seconds to distill the static table into an empty cache folder, in a new process."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        code = ("import time; t = time.perf_counter(); from bandit_router.static_encoder import static_encoder; "
                "from pathlib import Path; static_encoder(cache_dir=Path(%r))('x'); print(time.perf_counter() - t)"
                % folder)
        return float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
                     .stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--encoders", default=f"{DEFAULT_ENCODER},{STATIC_ENCODER}",
                        help="encoder names; the first is judged against the targets")
    parser.add_argument("--requests", type=int, default=400, help="timed requests per measurement (cached)")
    parser.add_argument("--cold", type=int, default=50, help="new prompts per measurement")
    parser.add_argument("--policies", default=f"{DEFAULT_POLICY},linucb,thompson,epsilon-greedy")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the concurrency test")
    parser.add_argument("--cold-starts", type=int, default=3, help="new processes per encoder for the cold start")
    parser.add_argument("--distill", action="store_true", help="also time distilling the static table afresh")
    args = parser.parse_args()
    started = time.perf_counter()
    machine = {"cpus": os.cpu_count(), "processor": platform.processor(), "machine": platform.machine(),
               "python": platform.python_version(), "load_before": os.getloadavg(),
               "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default")}
    all_prompts = prompts_of_50_words(100_000)
    prompts = all_prompts[: args.requests]
    fresh = Fresh(all_prompts[args.requests:])
    result: dict[str, object] = {"encoders": {}}
    for name in args.encoders.split(","):
        encoder = encoder_by_name(name)
        encoding = bench_encoding(encoder, fresh, args.cold)
        encoder.encode(prompts)  # the timed "cached" requests below
        policies = [p for p in args.policies.split(",") if p]
        routing = {policy: bench_routing(encoder, prompts, fresh if policy == DEFAULT_POLICY else None, args.cold,
                                         policy)
                   for policy in policies}
        result["encoders"][name] = {
            "encoding": encoding, "routing": routing, "memory": bench_memory(encoder),
            "litellm": bench_litellm(encoder, prompts, fresh, calls=args.cold),
            "concurrency": bench_concurrency(encoder, prompts, fresh, args.rounds),
            "cold_start": bench_cold_start(name, args.cold_starts)}
    if args.distill:
        result["distill_s"] = bench_distill()
    machine["load_after"] = os.getloadavg()
    result.update(machine=machine, seconds=time.perf_counter() - started)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "perf.json").write_text(json.dumps(result, indent=2))
    (out / "perf.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()

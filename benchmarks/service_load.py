"""Load test of the router service on loopback: two `bandit-router serve` processes sharing one Redis server
(learned state and budget), in front of the local OpenAI-compatible test server.

    PYTHONPATH=. LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python benchmarks/service_load.py \\
        --clients 200 --seconds 60 [--kill] --out benchmarks/results/service_load.json

Half the clients stream. Every client rates each answer it gets on the replica that served it and counts the
ratings acknowledged. Checked at the end: no failed request; ratings applied (sum of the replicas'
bandit_router_feedback_applied_total) = ratings acknowledged = ratings merged into Redis (the shared state's
count); the shared budget ledger's spend = the sum of the served answers' costs, <= its limit, nothing left
reserved. Before the load, 200 sequential requests measure the latency the router adds (p50 through the
router minus p50 of the same request sent straight to the test server).

--kill sends SIGKILL to the first replica halfway through: its clients move to the second one. Then requests
in flight on the killed replica fail (counted apart), and the check is that every rating acknowledged before
or after the kill is in Redis: the acknowledgement means "persisted".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

KEY = "sk-load-test-key-0123456789"
UPSTREAM_KEY = "sk-upstream-0123456789"
CHEAP, DEAR = "openai/model-a", "openai/model-b"
LIMIT = 1000.0  # USD: the shared budget's limit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer at {url}")


def run_upstream(port: int) -> None:
    """The test server in its own process (so the clients' process does not slow it down), with a listen backlog
    that holds a burst of connections (socketserver's default of 5 makes the kernel drop SYNs under load)."""
    from bandit_router import testing

    testing._HTTPServer.request_queue_size = 1024
    FakeLLMServer = testing.FakeLLMServer

    with FakeLLMServer(["model-a", "model-b"], port=port):
        signal.sigwait([signal.SIGTERM, signal.SIGINT])


def config(upstream: str, redis_url: str) -> dict[str, Any]:
    from bandit_router.service import hash_key

    models = [{"name": CHEAP, "input_cost_per_token": 1e-7, "output_cost_per_token": 2e-7, "api_base": upstream,
               "api_key_env": "UPSTREAM_KEY", "context_window": 100_000, "max_output_tokens": 1000},
              {"name": DEAR, "input_cost_per_token": 1e-5, "output_cost_per_token": 3e-5, "api_base": upstream,
               "api_key_env": "UPSTREAM_KEY", "context_window": 100_000, "max_output_tokens": 1000}]
    return {"models": models, "policy": "linucb", "encoder": "hashing:32", "seed": 0, "cost_weight": 0.2,
            "state": {"redis": redis_url, "namespace": "load", "sync_every": 1.0},
            "budget": {"limit": LIMIT, "pacer": "none"},
            "tenants": [{"name": "load", **hash_key(KEY)}]}


class Tally:
    def __init__(self) -> None:
        self.ok = 0
        self.failed: list[str] = []
        self.failed_in_kill: list[str] = []
        self.acked = 0
        self.rate_refused: dict[int, int] = {}
        self.latency: list[float] = []
        self.stream_latency: list[float] = []
        self.cost = 0.0
        self.before_kill = 0
        self.done_at: list[float] = []  # monotonic time of each served answer
        self.after_kill = 0


def score(model: str, step: int) -> float:
    return (0.9 if model == CHEAP else 0.6) if step % 3 else 0.3


async def one_request(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> dict[str, Any]:
    """The served answer's `bandit_router` field (from the last chunk when streaming)."""
    if not body.get("stream"):
        response = await client.post(url + "/v1/chat/completions", json=body)
        response.raise_for_status()
        return response.json()["bandit_router"]
    extension = None
    async with client.stream("POST", url + "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    raise RuntimeError(chunk["error"]["code"])
                extension = chunk.get("bandit_router", extension)
    if extension is None:
        raise RuntimeError("the stream ended without its usage chunk")
    return extension


async def client_loop(client: httpx.AsyncClient, index: int, urls: list[str], alive: list[bool], stop_at: float,
                      tally: Tally, killed: asyncio.Event) -> None:
    """One client: ask, then rate the answer on the replica that served it, until `stop_at`."""
    stream = index % 2 == 1
    home = (index // 2) % 2  # each replica gets as many streaming clients as non-streaming ones
    step = 0
    while time.monotonic() < stop_at:
        server = home if alive[home] else 1 - home
        body = {"model": "router", "stream": stream, "max_tokens": 50,
                "messages": [{"role": "user", "content": f"client {index} asks question {step % 17} now"}]}
        started = time.perf_counter()
        was_killed = killed.is_set()
        try:
            answer = await one_request(client, urls[server], body)
        except (httpx.HTTPError, RuntimeError) as error:
            killed_meanwhile = killed.is_set() and not was_killed and server == 0
            (tally.failed_in_kill if killed_meanwhile else tally.failed).append(f"{type(error).__name__}: {error}")
            step += 1
            continue
        (tally.stream_latency if stream else tally.latency).append(time.perf_counter() - started)
        tally.ok += 1
        tally.done_at.append(time.monotonic())
        tally.after_kill += killed.is_set()
        tally.before_kill += not killed.is_set()
        tally.cost += answer["cost"]
        try:
            rated = await client.post(urls[server] + "/v1/feedback", json={
                "route_id": answer["route_id"], "score": score(answer["model"], step)})
            if rated.status_code == 200 and rated.json()["persisted"]:
                tally.acked += 1
            else:
                tally.rate_refused[rated.status_code] = tally.rate_refused.get(rated.status_code, 0) + 1
        except httpx.HTTPError:
            tally.rate_refused[0] = tally.rate_refused.get(0, 0) + 1  # the replica died before answering
        step += 1


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) >= 2 else float("nan")


def sequential_overhead(router_url: str, upstream: str, n: int) -> dict[str, float]:
    """p50 of n sequential requests through the router and straight to the test server (ms)."""
    body = {"messages": [{"role": "user", "content": "how long does this take"}], "max_tokens": 50}
    times: dict[str, list[float]] = {"router": [], "direct": []}
    with httpx.Client(timeout=30) as client:
        for i in range(n):
            for name, url, extra, headers in (
                    ("direct", upstream + "/chat/completions", {"model": "model-a"}, {}),
                    ("router", router_url + "/v1/chat/completions", {"model": "router", "models": [CHEAP]},
                     {"Authorization": f"Bearer {KEY}"})):
                started = time.perf_counter()
                client.post(url, json={**body, **extra}, headers=headers).raise_for_status()
                times[name].append(time.perf_counter() - started)
    result = {f"{name}_p50_ms": statistics.median(values) * 1000 for name, values in times.items()}
    result["router_added_p50_ms"] = result["router_p50_ms"] - result["direct_p50_ms"]
    return result


def scrape(url: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--kill", action="store_true", help="SIGKILL the first replica halfway through")
    parser.add_argument("--sequential", type=int, default=200, help="requests of the latency comparison")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--upstream-port", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.upstream_port is not None:
        run_upstream(args.upstream_port)
        return 0

    from bandit_router.service.ledger import RedisBudget
    from bandit_router.store import RedisStateStore

    folder = Path(tempfile.mkdtemp(prefix="service-load-"))
    processes: list[subprocess.Popen] = []
    env = {**os.environ, "UPSTREAM_KEY": UPSTREAM_KEY}
    try:
        redis_port, upstream_port = free_port(), free_port()
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        processes.append(subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
             "--dir", str(folder), "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        processes.append(subprocess.Popen([sys.executable, __file__, "--upstream-port", str(upstream_port)], env=env))
        upstream = f"http://127.0.0.1:{upstream_port}/v1"
        wait_for(upstream + "/models", processes[-1], "the test server")
        (folder / "service.json").write_text(json.dumps(config(upstream, redis_url)))
        ports = [free_port(), free_port()]
        servers = []
        for port in ports:
            servers.append(subprocess.Popen(
                [sys.executable, "-m", "bandit_router.cli", "serve", "--config", str(folder / "service.json"),
                 "--port", str(port)], env=env))
            processes.append(servers[-1])
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for url, server in zip(urls, servers):
            wait_for(url + "/healthz", server, "a replica")

        for url in urls:  # warm both replicas up (LiteLLM initialises itself on its first calls)
            with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {KEY}"}) as client:
                for stream in (False, True, False, True):
                    client.post(url + "/v1/chat/completions", json={
                        "model": "router", "stream": stream, "messages": [{"role": "user", "content": "warm up"}]})
        overhead = sequential_overhead(urls[1], upstream, args.sequential)
        print(f"sequential: {overhead}", file=sys.stderr)
        budget = RedisBudget(redis_url, LIMIT, namespace="load")
        spent_before = budget.spent()
        learned = lambda: sum(int(s["n"]) for s in RedisStateStore(redis_url, namespace="load").totals().values())
        learned_before = learned()

        tally, alive = Tally(), [True, True]

        load_started = [0.0]

        async def load() -> float:
            killed = asyncio.Event()
            started = load_started[0] = time.monotonic()
            stop_at = started + args.seconds
            # one connection pool for every client (creating 200 clients costs seconds of TLS set-up on 2 cores)
            limits = httpx.Limits(max_connections=2 * args.clients, max_keepalive_connections=2 * args.clients)
            async with httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}, timeout=60,
                                         limits=limits) as client:
                tasks = [asyncio.create_task(client_loop(client, i, urls, alive, stop_at, tally, killed))
                         for i in range(args.clients)]
                if args.kill:
                    await asyncio.sleep(args.seconds / 2)
                    servers[0].send_signal(signal.SIGKILL)
                    alive[0] = False
                    killed.set()
                await asyncio.gather(*tasks)
            return time.monotonic() - started

        elapsed = asyncio.run(load())
        if args.kill:
            servers[0].wait()
        live_urls = [u for u, a in zip(urls, alive) if a]
        metrics = [scrape(u) for u in live_urls]
        applied = sum(m.get("bandit_router_feedback_applied_total", 0) for m in metrics)
        received = sum(m.get("bandit_router_feedback_received_total", 0) for m in metrics)
        merged = learned() - learned_before
        spent = budget.spent() - spent_before
        latencies = tally.latency + tally.stream_latency

        def mean_ms(name: str) -> float:  # from the live replicas' histograms (every model's series)
            total = sum(v for m in metrics for k, v in m.items() if k.startswith(name + "_sum"))
            count = sum(v for m in metrics for k, v in m.items() if k.startswith(name + "_count"))
            return round(total / count * 1000, 1) if count else float("nan")

        results = {
            "command": "benchmarks/service_load.py " + " ".join(sys.argv[1:]),
            "clients": args.clients, "seconds": round(elapsed, 1), "kill": args.kill, "cpus": os.cpu_count(),
            "load_average_at_end": round(os.getloadavg()[0], 1),
            "requests_ok": tally.ok, "requests_per_s": round(tally.ok / elapsed, 1),
            "served_per_5s": [sum(int((t - load_started[0]) // 5) == w for t in tally.done_at)
                              for w in range(math.ceil(elapsed / 5))],
            "requests_failed": len(tally.failed), "failed_in_flight_on_killed_replica": len(tally.failed_in_kill),
            "served_before_kill": tally.before_kill, "served_by_survivor_after_kill": tally.after_kill,
            "ratings_acknowledged": tally.acked, "ratings_refused_by_status": tally.rate_refused,
            "ratings_merged_in_redis": merged,
            "ratings_applied_on_live_replicas_metrics": applied, "ratings_received_on_live_replicas": received,
            "spend_usd_ledger": spent, "spend_usd_clients": tally.cost, "budget_limit_usd": LIMIT,
            "reserved_usd_after": budget.reserved(),
            "latency_p50_ms": round(p(latencies, 50), 1), "latency_p95_ms": round(p(latencies, 95), 1),
            "non_stream_p50_ms": round(p(tally.latency, 50), 1), "stream_p50_ms": round(p(tally.stream_latency, 50), 1),
            **{k: round(v, 2) for k, v in overhead.items()},
            "under_load_mean_routing_ms": mean_ms("bandit_router_routing_seconds"),
            "under_load_mean_upstream_ms": mean_ms("bandit_router_upstream_seconds"),
            "under_load_mean_request_ms": mean_ms("bandit_router_request_seconds"),
            "failures_sample": (tally.failed + tally.failed_in_kill)[:5],
        }
        checks = {
            "no_failed_request": not tally.failed,
            "every_ack_persisted_once": merged == tally.acked,
            "every_rating_applied_once": args.kill or applied == tally.acked == received,
            "no_budget_overrun": spent <= LIMIT and abs(spent - tally.cost) < 1e-6,
        }
        if not args.kill:
            checks["nothing_left_reserved"] = budget.reserved() == 0
        results["checks"] = checks
        print(json.dumps(results, indent=2))
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
        return 0 if all(checks.values()) else 1
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

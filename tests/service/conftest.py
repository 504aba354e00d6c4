"""Fixtures of the service tests: the local OpenAI-compatible test server as upstream, and the router service
running on a real uvicorn server on 127.0.0.1 (in a thread, or as `bandit-router serve` processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx
import pytest
import uvicorn

from bandit_router.service import Service, hash_key, parse_config
from bandit_router.testing import FakeLLMServer

from ..reliability.conftest import RedisServer, free_port, redis_server  # noqa: F401  (fixture)

KEYS = {"team-a": "sk-team-a-0123456789abcdef", "team-b": "sk-team-b-0123456789abcdef"}
UPSTREAM_KEY = "sk-upstream-test-key-0123"
CHEAP, DEAR = "openai/model-a", "openai/model-b"


def config_dict(base_url: str, **overrides: Any) -> dict[str, Any]:
    """A service config over the test server's two models (cheap and dear), with tenants team-a and team-b."""
    models = [{"name": CHEAP, "input_cost_per_token": 1e-7, "output_cost_per_token": 2e-7, "api_base": base_url,
               "api_key_env": "UPSTREAM_KEY", "supports_tools": True, "context_window": 100_000},
              {"name": DEAR, "input_cost_per_token": 1e-5, "output_cost_per_token": 3e-5, "api_base": base_url,
               "api_key_env": "UPSTREAM_KEY", "supports_tools": True, "context_window": 100_000}]
    tenants = [{"name": name, **hash_key(key, salt=f"{i + 1:02d}" * 16)} for i, (name, key) in enumerate(KEYS.items())]
    config = {"models": models, "policy": "linucb", "encoder": "hashing:16", "seed": 0, "cost_weight": 0.0,
              "tenants": tenants, "budget": {"limit": 10.0, "key_limit": 5.0}}
    config.update(overrides)
    return {k: v for k, v in config.items() if v is not None}


def scored_table(folder: Path, models: list[str]) -> str:
    """A routing-table folder: `models` scored on 30 prompts, the first model right on every one."""
    folder.mkdir()
    (folder / "prompts.csv").write_text("prompt_id,task,split,prompt\n" +
                                        "".join(f"p{i},chat,,question {i}\n" for i in range(30)))
    (folder / "outcomes.csv").write_text("prompt_id,model,score,cost\n" + "".join(
        f"p{i},{m},{1.0 if k == 0 else 0.0},0.001\n" for i in range(30) for k, m in enumerate(models)))
    (folder / "models.json").write_text(json.dumps({"cost_unit": "usd", "models": {m: {} for m in models}}))
    return str(folder)


class LiveServer:
    """A Service on a uvicorn server in a background thread of this process."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(service.app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class ServeProcess:
    """`bandit-router serve --config FILE` as a child process on a free port."""

    def __init__(self, config_path: Path, log: Path) -> None:
        self.port = free_port()
        env = {**os.environ, "UPSTREAM_KEY": UPSTREAM_KEY, "PYTHONPATH": str(Path(__file__).parents[2])}
        self.log = log.open("wb")
        self.process = subprocess.Popen([sys.executable, "-m", "bandit_router.cli", "serve", "--config",
                                         str(config_path), "--port", str(self.port)],
                                        env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"serve did not start; its output: {log.read_text()[-2000:]}")
            time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@pytest.fixture
def upstream() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(["model-a", "model-b"]) as server:
        yield server


def start_service(base_url: str, **overrides: Any) -> LiveServer:
    config = parse_config(config_dict(base_url, **overrides), env={"UPSTREAM_KEY": UPSTREAM_KEY})
    return LiveServer(Service(config))


@pytest.fixture
def served(upstream: FakeLLMServer) -> Iterator[LiveServer]:
    with start_service(upstream.base_url) as live:
        yield live


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(json.dumps(config))
    return path


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one series in a Prometheus exposition (0 when absent)."""
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0

"""Fixtures of the evaluation tests: a tiny routing table written to a temporary folder, and a fast encoder."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

from bandit_router.encoders import Encoder

TOPICS = ("math", "code", "poem")
MODELS = {"small": (0.1, 0.4), "coder": (1.0, 4.0), "large": (10.0, 40.0)}  # USD per Mtok in, out


def outcome(topic: str, model: str) -> float:
    """Each model is good at something: the coder at code, the large model at math, any model at poems."""
    good = {("math", "large"), ("code", "coder"), ("poem", "small"), ("poem", "coder"), ("poem", "large")}
    return 1.0 if (topic, model) in good else 0.2


def write_table(folder: Path, n: int = 60, parquet: bool = False) -> Path:
    """A routing-table folder of `n` prompts about three topics and three models."""
    folder.mkdir(parents=True, exist_ok=True)
    prompts = [{"prompt_id": f"p{i}", "task": TOPICS[i % 3], "split": "", "prompt": f"{TOPICS[i % 3]} question {i}"}
               for i in range(n)]
    outcomes = [{"prompt_id": p["prompt_id"], "model": m, "score": outcome(p["task"], m),
                 "cost": (10 * MODELS[m][0] + 50 * MODELS[m][1]) / 1e6} for p in prompts for m in MODELS]
    for stem, rows in (("prompts", prompts), ("outcomes", outcomes)):
        if parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(rows), folder / f"{stem}.parquet")
        else:
            with (folder / f"{stem}.csv").open("w", newline="") as f:
                writer = csv.DictWriter(f, list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
    models = {m: {"input_price_per_mtok": i, "output_price_per_mtok": o} for m, (i, o) in MODELS.items()}
    (folder / "models.json").write_text(json.dumps({"cost_unit": "usd", "models": models}))
    return folder


def topic_vector(text: str) -> np.ndarray:
    """One-hot of the topic word plus a little hashed noise, so every prompt has its own vector."""
    vector = np.array([float(t in text) for t in TOPICS] + [0.0] * 5)
    digest = hashlib.blake2b(text.encode(), digest_size=5).digest()
    vector[3:] = np.frombuffer(digest, dtype=np.uint8) / 2550.0
    return vector


@pytest.fixture
def table_dir(tmp_path: Path) -> Path:
    return write_table(tmp_path / "tiny")


@pytest.fixture
def topic_encoder() -> Encoder:
    return Encoder(lambda texts: np.stack([topic_vector(t) for t in texts]), name="topic", cache_size=0)

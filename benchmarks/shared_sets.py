"""The three shared routing sets as the sweep benchmarks read them (spend_target.py, warm_start.py): their
folders, the encoder, and the command-line arguments those scripts share."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bandit_router.encoders import sentence_encoder
from bandit_router.evaluation import RoutingTable, load_table, table_vectors

ROOT = Path(__file__).resolve().parents[1]
ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
SETS = {"llmrouter-9": "raise", "routellm-mmlu-2": "raise", "routerarena-2": "drop"}  # set: invalid_rows


def arguments(description: str, out: str) -> argparse.Namespace:
    """--data (the shared sets' folder), --seeds, --workers and --out (default docs/`out`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="folder of the shared sets")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "docs" / out))
    return parser.parse_args()


def load(data: str, name: str) -> tuple[RoutingTable, np.ndarray]:
    """The set `name` under `data` and its prompt vectors (from the disk cache once encoded)."""
    table = load_table(f"{data}/{name}", invalid_rows=SETS[name])
    return table, table_vectors(table, sentence_encoder(ENCODER))

"""Prompt vectors of a routing table, cached on disk (safetensors) so a data set is encoded once."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..encoder_base import Encoder, default_cache_dir
from ..atomic import write_atomic
from .table import RoutingTable

__all__ = ["default_cache_dir", "table_vectors", "lookup_encoder"]


def table_vectors(table: RoutingTable, encoder: Encoder, cache_dir: Path | None = None,
                  batch_size: int = 256, progress: bool = False) -> np.ndarray:
    """(len(table), dim) vectors of the table's prompts, read from or written to `cache_dir`."""
    from safetensors.numpy import load_file, save

    digest = hashlib.sha256(encoder.name.encode())
    for prompt in table.prompts:
        digest.update(b"\0" + prompt.encode("utf-8", "surrogatepass"))
    path = (cache_dir or default_cache_dir()) / f"{table.name}-{digest.hexdigest()[:16]}.safetensors"
    if path.exists():
        return load_file(path)["vectors"]
    batches = range(0, len(table), batch_size)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc=f"encoding {table.name}", unit="batch")
    vectors = np.concatenate([encoder.encode(table.prompts[i : i + batch_size]) for i in batches])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, save({"vectors": vectors}))
    return vectors


def lookup_encoder(table: RoutingTable, vectors: np.ndarray, name: str) -> Encoder:
    """An encoder that answers the table's prompts from precomputed `vectors` (for fast replays)."""
    index = {prompt: i for i, prompt in enumerate(table.prompts)}

    def embed(texts: list[str]) -> np.ndarray:
        try:
            return vectors[[index[t] for t in texts]]
        except KeyError:
            raise KeyError("lookup_encoder only knows the table's own prompts") from None

    return Encoder(embed, name=name, cache_size=0, dim=vectors.shape[1])

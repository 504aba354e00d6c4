"""Saving and loading a router: one safetensors file, its JSON config in the header metadata.

No pickle is involved anywhere: the file is a JSON header and raw arrays. A SHA-256 of the arrays and the
config, stored in the header, detects damaged files. Writes are atomic: a temporary file in the same folder
is written, fsynced and renamed over the target, so a crash leaves the old file or the new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from .errors import ConfigError, StateFormatError
from .models import Model
from .tasks import TEXT_WEIGHT

if TYPE_CHECKING:
    from .encoders import Encoder
    from .router import Router

__all__ = ["FORMAT", "save_router", "load_router", "write_atomic", "read_state"]

FORMAT = "bandit-router/1"


def _digest(config: str, arrays: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256(config.encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old content or the new, never a mix."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def encode_state(config: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> bytes:
    """Bytes of a state file holding `config` (JSON-safe) and named `arrays`."""
    from safetensors.numpy import save

    text = json.dumps(config, sort_keys=True)
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    return save(arrays, metadata={"format": FORMAT, "config": text, "sha256": _digest(text, arrays)})


def read_state(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(config, arrays) of a state file; StateFormatError for anything that is not an intact one."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise StateFormatError(f"cannot read state file {str(path)!r}: {error.strerror}") from None
    if len(data) < 8:
        raise StateFormatError(f"{str(path)!r} is not a bandit-router state file (too short)")
    header_len = int.from_bytes(data[:8], "little")
    if header_len > len(data) - 8:
        raise StateFormatError(f"{str(path)!r} is not a bandit-router state file (bad header length)")
    try:
        header = json.loads(data[8 : 8 + header_len])
        arrays = load(data)
    except (ValueError, UnicodeDecodeError, SafetensorError) as error:
        raise StateFormatError(f"{str(path)!r} is not a bandit-router state file ({error})") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise StateFormatError(f"{str(path)!r} is not a bandit-router state file (format {FORMAT!r} expected)")
    if metadata.get("sha256") != _digest(metadata.get("config", ""), arrays):
        raise StateFormatError(f"{str(path)!r} is damaged: its checksum does not match its content")
    try:
        config = json.loads(metadata["config"])
    except (KeyError, ValueError):
        raise StateFormatError(f"{str(path)!r} has no readable config") from None
    return config, arrays


def _rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return rng.bit_generator.state


def save_router(router: "Router", path: str | Path) -> None:
    """Save `router`'s config, policy state and random state to `path` (atomic)."""
    with router._lock:
        config = {
            "models": [m.to_config() for m in router.models.values()],
            "policy": {"name": router.policy.name, "settings": router.policy.config.to_dict(),
                       "rng": _rng_state(router.policy.rng)},
            "encoder": router.encoder.name,
            "dim": router.policy.dim,
            "router": {"cost_weight": router.cost_weight, "seed": router.seed, "store_prompts": router.store_prompts,
                       "store_vectors": router.store_vectors, "pending_ttl": router.pending_ttl,
                       "max_pending": router.max_pending, "expired_reward": router.expired_reward,
                       "expected_output_tokens": router.expected_output_tokens,
                       "max_attempts": router.max_attempts, "tasks": list(router.tasks),
                       "text_weight": router.hints.text_weight if router.hints else TEXT_WEIGHT},
            "rng": _rng_state(router.rng),
        }
        data = encode_state(config, {**{f"policy.{k}": v for k, v in router.policy.state().items()},
                                     **{f"costs.{k}": v for k, v in router.costs.state().items()}})
    write_atomic(path, data)


def load_router(path: str | Path, encoder: "Encoder | Callable | None" = None,
                api_keys: Mapping[str, str] | None = None, **settings: Any) -> "Router":
    """Rebuild a router saved by `save_router`. `settings` override saved router settings (e.g. log=...)."""
    from .encoders import as_encoder, sentence_encoder
    from .policies import make_policy
    from .router import Router

    config, arrays = read_state(path)
    try:
        models = [Model.from_config(m, api_key=(api_keys or {}).get(m["name"])) for m in config["models"]]
        policy_config = config["policy"]
        enc = as_encoder(encoder) if encoder is not None else sentence_encoder(config["encoder"])
        policy = make_policy(policy_config["name"], config["dim"], [m.name for m in models],
                             **policy_config["settings"])
        policy.rng.bit_generator.state = policy_config["rng"]
        policy.load_state({k.removeprefix("policy."): v for k, v in arrays.items() if k.startswith("policy.")})
        router = Router(models, policy=policy, encoder=enc, **{**config["router"], **settings})
        router.rng.bit_generator.state = config["rng"]
        if "costs.n" in arrays:  # files saved before the cost model was learned have none
            router.costs.load_state({k.removeprefix("costs."): v for k, v in arrays.items() if k.startswith("costs.")})
    except (KeyError, TypeError) as error:
        raise StateFormatError(f"{str(path)!r} has an incomplete config ({error!r})") from None
    try:
        dim = router.dim
    except OSError:
        raise ConfigError(f"{str(path)!r} was saved with encoder {config['encoder']!r}, which cannot be loaded "
                          "here by name; pass the same encoder to Router.load(path, encoder=...)") from None
    if dim != policy.dim:
        with_tasks = f" ({dim} with its {len(router.tasks)} tasks)" if router.tasks else ""
        raise StateFormatError(f"encoder {router.encoder.name!r} gives {router.encoder.dim}-d vectors{with_tasks}; "
                               f"the saved policy expects {policy.dim}")
    return router

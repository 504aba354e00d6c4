"""Saving and loading a router: one safetensors file, its JSON config in the header metadata.

No pickle is involved anywhere: the file is a JSON header and raw arrays. A SHA-256 of the arrays and the
config, stored in the header, detects damaged files. Writes are atomic: a temporary file in the same folder
is written, fsynced and renamed over the target, so a crash leaves the old file or the new one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from dataclasses import replace
from typing import Any, Callable, Mapping, Protocol, TypeVar

import numpy as np

from .costs import CostModel
from .encoders import Encoder, as_encoder
from .errors import ConfigError, StateFormatError
from .models import Model
from .policies import Policy, make_policy
from .settings import FeedbackSettings, Limits, LogSettings
from .tasks import TEXT_WEIGHT, TaskHints

T = TypeVar("T")

__all__ = ["FORMAT", "encode_router", "load_router", "read_state", "encode_state"]

FORMAT = "bandit-router/1"


def _digest(config: str, arrays: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256(config.encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


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


class Saved(Protocol):
    """What `encode_router` reads from a router (see bandit_router.router.Router)."""

    models: Mapping[str, Model]
    policy: Policy
    encoder: Encoder
    hints: TaskHints | None
    cost_weight: float
    seed: int | None
    feedback_settings: FeedbackSettings
    limits: Limits
    log_settings: LogSettings
    rng: np.random.Generator
    costs: CostModel


def encode_router(router: Saved) -> bytes:
    """Bytes of a state file with `router`'s config, policy state and random state (the caller holds its lock)."""
    config = {
        "models": [m.to_config() for m in router.models.values()],
        "policy": {"name": router.policy.name, "settings": router.policy.config.to_dict(),
                   "rng": _rng_state(router.policy.rng)},
        "encoder": router.encoder.name,
        "dim": router.policy.dim,
        "router": {"cost_weight": router.cost_weight, "seed": router.seed,
                   "tasks": list(router.hints.tasks) if router.hints else [],
                   "text_weight": router.hints.text_weight if router.hints else TEXT_WEIGHT,
                   "feedback": router.feedback_settings.to_config(), "limits": router.limits.to_config(),
                   "log": router.log_settings.to_config()},
        "rng": _rng_state(router.rng),
    }
    return encode_state(config, {**{f"policy.{k}": v for k, v in router.policy.state().items()},
                                 **{f"costs.{k}": v for k, v in router.costs.state().items()}})


_LEGACY = {"feedback": ("pending_ttl", "max_pending", "expired_reward"),
           "limits": ("expected_output_tokens", "max_attempts"), "log": ("store_prompts", "store_vectors")}


def _arguments(saved: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor arguments from a saved "router" config (grouped, or flat as files before 0.x wrote it),
    with `overrides` (the saved log flags apply to an overriding log target)."""
    saved = dict(saved)
    for group, keys in _LEGACY.items():
        if group not in saved:
            saved[group] = {k: saved.pop(k) for k in keys if k in saved}
    tasks = saved.pop("tasks")
    text_weight = saved.pop("text_weight")
    log = LogSettings(**saved.pop("log"))
    args = {**saved, "tasks": TaskHints(tasks, text_weight) if tasks else (), "log": log,
            "feedback": FeedbackSettings(**saved.pop("feedback")), "limits": Limits(**saved.pop("limits"))}
    args.update(overrides)
    if not isinstance(args["log"], LogSettings):
        args["log"] = replace(log, target=args["log"])
    return args


def load_router(build: Callable[..., T], path: str | Path, encoder: Encoder | Callable | None = None,
                api_keys: Mapping[str, str] | None = None, **settings: Any) -> T:
    """Rebuild with `build` (the Router class) a router saved from `encode_router`. `settings` override saved
    constructor arguments (e.g. log=...)."""
    config, arrays = read_state(path)
    try:
        models = [Model.from_config(m, api_key=(api_keys or {}).get(m["name"])) for m in config["models"]]
        policy_config = config["policy"]
        enc = as_encoder(config["encoder"] if encoder is None else encoder)
        policy = make_policy(policy_config["name"], config["dim"], [m.name for m in models],
                             **policy_config["settings"])
        policy.rng.bit_generator.state = policy_config["rng"]
        policy.load_state({k.removeprefix("policy."): v for k, v in arrays.items() if k.startswith("policy.")})
        router = build(models, policy=policy, encoder=enc, **_arguments(config["router"], settings))
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

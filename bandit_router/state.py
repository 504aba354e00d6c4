"""Saving and loading a router: one safetensors file, its JSON config in the header metadata.

No pickle is involved anywhere: the file is a JSON header and raw arrays. A SHA-256 of the arrays and the
config, stored in the header, detects damaged files. Writes are atomic: a temporary file in the same folder
is written, fsynced and renamed over the target, so a crash leaves the old file or the new one.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import math
import re
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, TypeVar

import numpy as np

from .checks import json_too_deep
from .costs import CostModel
from .encoders import Encoder, as_encoder
from .errors import ConfigError, StateFormatError, StoreUnavailableError
from .models import Model, split_credentials
from .policies import Policy, make_policy, policy_class
from .settings import FeedbackSettings, Limits, LogSettings
from .tasks import TEXT_WEIGHT, TaskHints

T = TypeVar("T")

__all__ = ["FORMAT", "encode_router", "load_router", "read_state", "encode_state", "check_state", "encoder_name",
           "LEARNED_SETTINGS"]

FORMAT = "bandit-router/1"

# What a state file may set: the learned state and the settings that shape it. Paths, secrets, prompt storage
# and limits (log, store_prompts, feedback_secret, source_limit, max_prompt_chars, ...) never come from a file.
LEARNED_SETTINGS = frozenset({"cost_weight", "seed", "expected_output_tokens", "expired_reward", "tasks",
                              "text_weight"})
# Operational settings older files kept (flat, or grouped in "feedback"/"limits"/"log"): accepted at their
# defaults, or when the caller passes that group to Router.load (the file's value is then not used); key -> group.
_GROUPS = {"feedback": FeedbackSettings().to_config(), "limits": Limits().to_config(), "log": LogSettings().to_config()}
_OPERATIONAL = {key: group for group, keys in _GROUPS.items() for key in keys if key not in LEARNED_SETTINGS}
log = logging.getLogger(__name__)

_CONFIG_KEYS = {"models", "policy", "encoder", "dim", "router", "rng"}
_KEYED = "keyed"  # the names of the models saved with a key or credentials (files before 2026-12-06 have none)
MAX_HEADER = 16 << 20  # bytes of JSON header
MAX_DEPTH = 32  # JSON nesting
MAX_DIM = 65_536
MAX_MODELS = 1_024
MAX_MAGNITUDE = 1e12  # largest |value| in a saved array (counts and sums of unit-scale vectors stay far below)
FREE_BYTES = 64 << 20  # what building a policy may allocate beyond 16x the file's arrays
_ENCODER_NAME = re.compile(r"hashing:\d{1,4}|[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?")


def _check_depth(text: str | bytes, where: str) -> None:
    """StateFormatError if JSON `text` nests deeper than MAX_DEPTH (json.loads would recurse without bound)."""
    if json_too_deep(text.decode("utf-8", "replace") if isinstance(text, bytes) else text, MAX_DEPTH):
        raise StateFormatError(f"{where} nests deeper than {MAX_DEPTH} levels")


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
    if header_len > min(len(data) - 8, MAX_HEADER):
        raise StateFormatError(f"{str(path)!r} is not a bandit-router state file (bad header length)")
    _check_depth(data[8 : 8 + header_len], f"{str(path)!r}'s header")
    try:
        header = json.loads(data[8 : 8 + header_len])
        arrays = load(data)
    except (ValueError, UnicodeDecodeError, SafetensorError, RecursionError) as error:
        raise StateFormatError(f"{str(path)!r} is not a bandit-router state file ({error})") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise StateFormatError(f"{str(path)!r} is not a bandit-router state file (format {FORMAT!r} expected)")
    if metadata.get("sha256") != _digest(metadata.get("config", ""), arrays):
        raise StateFormatError(f"{str(path)!r} is damaged: its checksum does not match its content")
    if not isinstance(metadata.get("config"), str):
        raise StateFormatError(f"{str(path)!r} has no readable config")
    _check_depth(metadata["config"], f"{str(path)!r}'s config")
    try:
        config = json.loads(metadata["config"])
    except (KeyError, TypeError, ValueError, RecursionError):
        raise StateFormatError(f"{str(path)!r} has no readable config") from None
    return config, arrays


def _fail(where: str, problem: str) -> StateFormatError:
    return StateFormatError(f"state file {where}: {problem}")


def _check_rng(state: Any, where: str) -> None:
    """StateFormatError unless `state` is a PCG64 generator state numpy will accept."""
    def number(value: Any, bits: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**bits

    inner = state.get("state") if isinstance(state, dict) else None
    if not (isinstance(state, dict) and set(state) == {"bit_generator", "state", "has_uint32", "uinteger"}
            and state["bit_generator"] == "PCG64" and isinstance(inner, dict) and set(inner) == {"state", "inc"}
            and number(inner["state"], 128) and number(inner["inc"], 128) and state["has_uint32"] in (0, 1)
            and number(state["uinteger"], 32)):
        raise _fail(where, "is not a PCG64 random generator state")


def _check_models(models: Any) -> None:
    if not isinstance(models, list) or not 1 <= len(models) <= MAX_MODELS:
        raise _fail("models", f"must be a list of 1 to {MAX_MODELS} model cards")
    for i, card in enumerate(models):
        if not isinstance(card, dict) or not isinstance(card.get("name"), str):
            raise _fail(f"models[{i}]", "must be a model card with a name")
        params = card.get("params", {})
        if not isinstance(params, dict):
            raise _fail(f"models[{i}].params", "must be a mapping")
        secret = split_credentials(params)[1]
        if secret:  # never saved by this library: a crafted file choosing credentials
            raise _fail(f"models[{i}].params", f"holds credentials {sorted(secret)}; credentials are never read from "
                        "a state file: pass them with Router.load(path, credentials={model: {...}})")


def _check_router(settings: Any, overrides: Mapping[str, Any]) -> None:
    if not isinstance(settings, dict):
        raise _fail("config['router']", "must be a mapping")
    settings = _flat({k: v for k, v in settings.items() if not (k in _GROUPS and k in overrides)})
    for key, value in settings.items():
        if key in LEARNED_SETTINGS or key in overrides or _OPERATIONAL.get(key) in overrides or (
                key in _OPERATIONAL and _GROUPS[_OPERATIONAL[key]][key] == value):
            continue
        raise _fail(f"config['router'][{key!r}]", f"a state file may only set {sorted(LEARNED_SETTINGS)}; paths, "
                    "secrets, prompt storage and limits come from the caller (pass them to Router.load)")
    seed, tasks = settings.get("seed"), settings.get("tasks", [])
    if seed is not None and not (isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**63):
        raise _fail("config['router']['seed']", f"must be None or an integer in [0, 2**63), got {seed!r}")
    if not (isinstance(tasks, list) and len(tasks) <= MAX_DIM and all(isinstance(t, str) for t in tasks)):
        raise _fail("config['router']['tasks']", "must be a list of task names")
    for key in ("cost_weight", "text_weight", "expected_output_tokens", "expired_reward"):
        value = settings.get(key)
        if not (value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                                  and math.isfinite(value) and 0 <= value <= 10**7)):
            raise _fail(f"config['router'][{key!r}]", f"must be a finite number, got {value!r}")


def _check_arrays(config: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """Values within MAX_MAGNITUDE, and a policy whose size the file's own arrays account for."""
    for name, array in arrays.items():
        if array.dtype.kind not in "fiub":
            raise _fail(name, f"has dtype {array.dtype}; numbers expected")
        if array.size and array.dtype.kind == "f" and not np.isfinite(array).all():
            raise _fail(name, "holds NaN or infinite values")
        if array.size and np.abs(array.astype(np.float64)).max() > MAX_MAGNITUDE:
            raise _fail(name, f"holds values beyond +-{MAX_MAGNITUDE:g} (no learned state reaches them)")
    # Building a policy allocates its state before the file's arrays are checked against it: per model about
    # (dim+1)^2 numbers (the linear policies), plus settings such as buffer or clusters times dim. A file must
    # carry arrays of that order, so a small crafted file cannot make the loader allocate gigabytes.
    dim, k = config["dim"], len(config["models"])
    sizes = sum(v for key, v in config["policy"]["settings"].items()
                if isinstance(v, int) and not isinstance(v, bool) and "seed" not in key)
    need = 8 * k * (dim + 1) ** 2 + 40 * max(sizes, 0) * (dim + 1)
    have = sum(a.nbytes for a in arrays.values())
    if need > 16 * have + FREE_BYTES:
        raise _fail("config['dim']", f"{dim} with {k} models and these policy settings needs about {need >> 20} MB; "
                    f"the file's arrays hold {have >> 20} MB")


def encoder_name(name: str) -> str:
    """`name` if it can name a Hugging Face model (org/name) or the hashing encoder ("hashing:<dim>"), so that a
    file naming its encoder cannot make the loader read a local path; StateFormatError otherwise."""
    if not (_ENCODER_NAME.fullmatch(name) and ".." not in name) or Path(name).exists():
        raise _fail("config['encoder']", f"{name!r} is not a Hugging Face model name or 'hashing:<dim>' (or it is "
                    "also a local path); pass the encoder the file was saved with to Router.load(path, encoder=...)")
    return name


def check_state(config: Any, arrays: Mapping[str, np.ndarray], overrides: Mapping[str, Any] = {}) -> None:
    """StateFormatError naming the first field of a state file's config or arrays that this library would not
    have written: unknown or operational keys (settings in `overrides`, passed by the caller, excepted),
    credentials, bad random states, sizes its arrays do not account for, magnitudes beyond MAX_MAGNITUDE."""
    if not isinstance(config, dict) or set(config) - {_KEYED} != _CONFIG_KEYS:
        keys = sorted(config) if isinstance(config, dict) else type(config).__name__
        raise _fail("config", f"has keys {keys}; expected {sorted(_CONFIG_KEYS)}")
    policy = config["policy"]
    if not (isinstance(policy, dict) and set(policy) == {"name", "settings", "rng"} and isinstance(policy["name"], str)
            and isinstance(policy["settings"], dict)):
        raise _fail("config['policy']", "must hold a policy name, its settings and its random state")
    dim, encoder = config["dim"], config["encoder"]
    if not (isinstance(dim, int) and not isinstance(dim, bool) and 1 <= dim <= MAX_DIM):
        raise _fail("config['dim']", f"must be an integer in [1, {MAX_DIM}], got {dim!r}")
    if not (isinstance(encoder, str) and 0 < len(encoder) <= 256):
        raise _fail("config['encoder']", "must be the encoder's name")
    _check_models(config["models"])
    names = [m["name"] for m in config["models"]]
    if not (isinstance(config.get(_KEYED, []), list) and set(config.get(_KEYED, [])) <= set(names)):
        raise _fail(f"config[{_KEYED!r}]", "must list some of the models' names")
    _check_router(config["router"], overrides)
    _check_rng(config["rng"], "config['rng']")
    _check_rng(policy["rng"], "config['policy']['rng']")
    _check_arrays(config, arrays)


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
    replica: Any


def encode_router(router: Saved) -> bytes:
    """Bytes of a state file with `router`'s config, policy state and random state (the caller holds its lock).
    A router that shares its state also writes its own part (`own_state`, arrays "local.*"): see `load_router`."""
    config = {
        "models": [m.to_config() for m in router.models.values()],
        "policy": {"name": router.policy.name, "settings": router.policy.config.to_dict(),
                   "rng": _rng_state(router.policy.rng)},
        "encoder": router.encoder.name,
        "dim": router.policy.dim,
        "router": {"cost_weight": router.cost_weight, "seed": router.seed,  # LEARNED_SETTINGS only
                   "tasks": list(router.hints.tasks) if router.hints else [],
                   "text_weight": router.hints.text_weight if router.hints else TEXT_WEIGHT,
                   "expired_reward": router.feedback_settings.expired_reward,
                   "expected_output_tokens": router.limits.expected_output_tokens},
        "rng": _rng_state(router.rng),
        _KEYED: [m.name for m in router.models.values() if m.api_key or m.credentials],  # never the keys
    }
    own = router.policy.own_state() if router.replica is not None else {}  # type: ignore[attr-defined]
    return encode_state(config, {**{f"policy.{k}": v for k, v in router.policy.state().items()},
                                 **{f"local.{k}": v for k, v in own.items()},
                                 **{f"costs.{k}": v for k, v in router.costs.state().items()}})


def _policy_arrays(arrays: Mapping[str, np.ndarray], store: Any, path: str | Path) -> dict[str, np.ndarray]:
    """The policy state to load: the whole of it, or, for a file saved while sharing and loaded beside a store
    that holds totals (the same store, as a rule), only the saved replica's own part, since the totals come
    from the store: loading the whole would count them twice."""
    whole = {k.removeprefix("policy."): v for k, v in arrays.items() if k.startswith("policy.")}
    own = {k.removeprefix("local."): v for k, v in arrays.items() if k.startswith("local.")}
    if not own or store is None:
        return whole
    try:
        shared = bool(store.totals())
    except StoreUnavailableError:
        shared = True
    if not shared:
        log.warning("%r was saved beside a shared store and %r holds nothing yet: the whole saved state becomes "
                    "this replica's own", str(path), store)
        return whole
    return own


def _flat(saved: Mapping[str, Any]) -> dict[str, Any]:
    """A saved "router" config with its "feedback"/"limits"/"log" groups (files before #21) flattened; a group that
    is not a mapping stays a key of its own (which `check_state` refuses unless the caller overrides it)."""
    flat = {k: v for k, v in saved.items() if not (k in _GROUPS and isinstance(v, dict))}
    for group in _GROUPS.keys() & saved.keys():
        flat.update(saved[group] if isinstance(saved[group], dict) else {})
    return flat


def _arguments(saved: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor arguments from a saved "router" config (checked by `check_state`): its learned settings, then
    `overrides` (the operational settings: log, feedback, limits, ...)."""
    flat = _flat(saved)
    tasks = flat.get("tasks", [])
    args = {k: flat[k] for k in ("cost_weight", "seed") if k in flat}
    args["tasks"] = TaskHints(tasks, flat.get("text_weight", TEXT_WEIGHT)) if tasks else ()
    args["feedback"] = FeedbackSettings(**{k: flat[k] for k in ("expired_reward",) if k in flat})
    args["limits"] = Limits(**{k: flat[k] for k in ("expected_output_tokens",) if k in flat})
    return {**args, **overrides}


_ENDPOINTS = ("api_base", "base_url")  # a card's params that choose where its requests (and keys) go


def _endpoint(card: Mapping[str, Any]) -> str | None:
    """The endpoint a saved card names: its api_base, else params api_base/base_url."""
    params = card.get("params") or {}
    return card.get("api_base") or next((params[k] for k in _ENDPOINTS if params.get(k)), None)


def _confirmed(card: dict[str, Any], api_bases: Mapping[str, str], path: str | Path) -> dict[str, Any]:
    """`card` with the endpoint the caller gave for it; ConfigError if the file names one the caller did not
    confirm: a state file must not choose where requests, and the keys or environment credentials sent with them,
    go."""
    name, saved = card["name"], _endpoint(card)
    if name not in api_bases:
        if saved is not None:
            raise ConfigError(f"{str(path)!r} names the endpoint {saved!r} for model {name!r}; a state file cannot "
                              f"choose where requests and keys go: confirm it with Router.load(path, "
                              f"api_bases={{{name!r}: {saved!r}}})")
        return card
    params = {k: v for k, v in (card.get("params") or {}).items() if k not in _ENDPOINTS}
    return {**card, "params": params, "api_base": api_bases[name]}


def load_router(build: Callable[..., T], path: str | Path, encoder: Encoder | Callable | None = None,
                api_keys: Mapping[str, str] | None = None, credentials: Mapping[str, Mapping[str, Any]] | None = None,
                api_bases: Mapping[str, str] | None = None, policy_settings: Mapping[str, Any] | None = None,
                **settings: Any) -> T:
    """Rebuild with `build` (the Router class) a router saved from `encode_router`. Keys and credentials are never
    saved: pass them again per model name; so are the endpoints the file names (`api_bases`), which the file
    records but may not choose. `policy_settings` change saved policy settings that its learned state
    does not depend on (see PolicyConfig.STATE_SETTINGS). `settings` are the operational constructor arguments
    (log=..., feedback=..., limits=...), which a file never sets, and `seed`, which replaces the saved random
    state with fresh draws from that seed (without it, routing goes on from the saved random state)."""
    known = set(inspect.signature(build).parameters) - {"models", "policy", "encoder", "policy_settings"}
    for name in settings.keys() - known:
        close = get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"Router.load got an unknown argument {name!r}{hint} (it takes encoder, api_keys, "
                          f"credentials, api_bases, policy_settings and {sorted(known)})")
    config, arrays = read_state(path)
    check_state(config, arrays, settings)
    unknown = set(api_bases or {}) - {m["name"] for m in config["models"]}
    if unknown:
        raise ConfigError(f"api_bases names models {sorted(unknown)} that {str(path)!r} does not hold")
    try:
        models = [Model.from_config(_confirmed(m, api_bases or {}, path), api_key=(api_keys or {}).get(m["name"]),
                                    credentials=(credentials or {}).get(m["name"])) for m in config["models"]]
        policy_config = config["policy"]
        enc = as_encoder(encoder_name(config["encoder"]) if encoder is None else encoder)
        name = policy_config["name"]
        policy = make_policy(name, config["dim"], [m.name for m in models],
                             **policy_class(name).Config.reloaded(policy_config["settings"], policy_settings or {}))
        reseed = settings.get("seed") is not None  # a seed given: fresh draws from it, not the saved ones
        if reseed:
            policy.rng = np.random.default_rng(settings["seed"])
        else:
            policy.rng.bit_generator.state = policy_config["rng"]
        policy.load_state(_policy_arrays(arrays, settings.get("state_store"), path))
        router = build(models, policy=policy, encoder=enc, **_arguments(config["router"], settings))
        if not reseed:
            router.rng.bit_generator.state = config["rng"]
        if "costs.n" in arrays:  # files saved before the cost model was learned have none
            router.costs.load_state({k.removeprefix("costs."): v for k, v in arrays.items() if k.startswith("costs.")})
    except (KeyError, TypeError, OverflowError) as error:
        raise StateFormatError(f"{str(path)!r} has an incomplete config ({error!r})") from None
    try:
        dim = router.dim
    except ConfigError as error:  # the encoder named in the file cannot be loaded here (see load_sentence_transformer)
        raise ConfigError(f"{str(path)!r} was saved with encoder {config['encoder']!r}, which cannot be loaded "
                          f"here by name; pass the same encoder to Router.load(path, encoder=...) ({error})") from None
    if dim != policy.dim:
        with_tasks = f" ({dim} with its {len(router.tasks)} tasks)" if router.tasks else ""
        raise StateFormatError(f"encoder {router.encoder.name!r} gives {router.encoder.dim}-d vectors{with_tasks}; "
                               f"the saved policy expects {policy.dim}")
    if router.encoder.name != config["encoder"]:
        log.warning("%r was saved with encoder %r and is loaded with %r: what it learned applies to the saved "
                    "encoder's vectors only (pass that encoder, or name yours alike if it is the same)", str(path),
                    config["encoder"], router.encoder.name)
    keyless = [name for name in config.get(_KEYED, []) if not (api_keys or {}).get(name)
               and not (credentials or {}).get(name)]
    if keyless:
        log.warning("%r: %s had an API key or credentials when saved, which a state file never holds; pass them with "
                    "Router.load(path, api_keys={name: key}) or credentials=, or calls will rely on the provider's "
                    "environment variables", str(path), keyless)
    return router

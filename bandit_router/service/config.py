"""The service's config file (JSON or TOML): models, policy, dial, stores, budget, feedback rules, tenants, a
prior (a routing table every replica warm-starts from) and the judge `bandit-router score-table` grades with.

Secrets never live in the file: model API keys and the feedback secret are read from environment variables
the file names, and tenants' API keys are stored as salted SHA-256 digests (see `bandit_router.service.auth`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..budget import Budget
from ..encoders import encoder_by_name
from ..errors import ConfigError, DataFormatError
from ..models import Model
from ..policies import policy_class
from ..router import Router
from ..settings import FeedbackSettings, Limits
from ..spend import SpendTarget
from ..store import RedisStateStore, SQLiteStateStore, StateStore
from ..evaluation.table import RoutingTable, load_table
from .auth import KeyRing, Tenant

__all__ = ["ServiceConfig", "load_config"]

log = logging.getLogger(__name__)

_TOP = {"models", "policy", "policy_settings", "cost_weight", "spend_target", "encoder", "seed", "tasks",
        "pending_ttl", "max_pending", "max_attempts", "expected_output_tokens", "cooldown", "cooldown_after", "log",
        "state", "budget", "feedback", "tenants", "server", "prior", "judge"}
_STATE = {"redis", "sqlite", "namespace", "sync_every"}
_BUDGET = {"limit", "period", "key_limit", "pacer", "bins"}
_FEEDBACK = {"secret_env", "limit_per_tenant", "window", "token_ttl"}
_SERVER = {"host", "port", "max_body_bytes", "max_messages", "shutdown_timeout"}
_PRIOR = {"table", "strength", "invalid_rows"}

_Kind = tuple[str, Callable[[Any], bool]]  # what a field must be (as the error says it), and the test of a value


def _number(value: Any) -> bool:  # finite, as a float too (JSON integers have no bound)
    return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) <= sys.float_info.max


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _one_of(*choices: str) -> _Kind:
    return "one of " + ", ".join(map(repr, choices)), lambda value: isinstance(value, str) and value in choices


_TEXT: _Kind = ("a non-empty string", _text)
_PATH: _Kind = ("a file path (a non-empty string)", _text)
_VARIABLE: _Kind = ("the name of an environment variable", _text)
_COUNT: _Kind = ("an integer >= 1", lambda v: _integer(v) and v >= 1)
_SECONDS: _Kind = ("a finite number > 0 (seconds)", lambda v: _number(v) and v > 0)
_SECONDS_OR_0: _Kind = ("a finite number >= 0 (seconds)", lambda v: _number(v) and v >= 0)
_USD: _Kind = ("a finite number > 0 (USD)", lambda v: _number(v) and v > 0)
_FLAG: _Kind = ("true or false", lambda v: v is None or isinstance(v, bool))  # None (JSON null): ask LiteLLM

# every scalar field the config reads, by its path (section.key; top-level fields have no section)
_FIELDS: dict[str, _Kind] = {
    "policy": _TEXT,
    "policy_settings": ("a table/object of the policy's settings", lambda v: isinstance(v, Mapping)),
    "cost_weight": ("a number in [0, 1] (0 = quality only)", lambda v: _number(v) and 0 <= v <= 1),
    "encoder": ("'hashing:<dim>' or a sentence-transformers model name", _text),
    "seed": ("an integer >= 0", lambda v: _integer(v) and v >= 0),
    "tasks": ("a list of distinct non-empty task names", lambda v: isinstance(v, list) and all(map(_text, v))
              and len(set(v)) == len(v)),
    "pending_ttl": _SECONDS, "max_pending": _COUNT, "max_attempts": _COUNT, "expected_output_tokens": _COUNT,
    "cooldown": _SECONDS_OR_0, "cooldown_after": _COUNT, "log": _PATH,
    "state.redis": ("a URL starting with redis://, rediss:// or unix://",
                    lambda v: isinstance(v, str) and v.startswith(("redis://", "rediss://", "unix://"))),
    "state.sqlite": _PATH, "state.namespace": _TEXT, "state.sync_every": _SECONDS_OR_0,
    "budget.limit": _USD, "budget.period": _SECONDS, "budget.key_limit": _USD, "budget.bins": _COUNT,
    "budget.pacer": _one_of("knapsack", "none"),  # Budget's "split" needs expected_queries, which a config cannot give
    "feedback.secret_env": _VARIABLE, "feedback.limit_per_tenant": _COUNT, "feedback.window": _SECONDS,
    "feedback.token_ttl": _SECONDS,
    "server.host": _TEXT, "server.port": ("an integer in [0, 65535]", lambda v: _integer(v) and 0 <= v <= 65535),
    "server.max_body_bytes": _COUNT, "server.max_messages": _COUNT, "server.shutdown_timeout": _SECONDS_OR_0,
    "prior.table": ("the path of a routing-table folder", _text),
    "prior.strength": ("a finite number > 0 (online observations per offline one)", lambda v: _number(v) and v > 0),
    "prior.invalid_rows": _one_of("raise", "drop"),
}
_TENANT: _Kind = ("a table of name, salt, key_sha256[, budget_key]", lambda v: isinstance(v, Mapping))
_MODEL_FIELDS: dict[str, _Kind] = {"api_key_env": _VARIABLE, "supports_tools": _FLAG, "supports_vision": _FLAG,
                                  "description": ("a string", lambda v: isinstance(v, str))}


def _check(value: Any, path: str, kind: _Kind) -> Any:
    """`value`, or ConfigError naming the field by its config `path`, what it must be, and the value given."""
    wanted, ok = kind
    if not ok(value):
        raise ConfigError(f"{path} must be {wanted}, got {value!r}")
    return value


def _section(config: Mapping[str, Any], name: str, allowed: set[str]) -> dict[str, Any]:
    value = config.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be a table/object, got {type(value).__name__}")
    unknown = set(value) - allowed
    if unknown:
        raise ConfigError(f"{name} has unknown fields {sorted(unknown)}; allowed: {sorted(allowed)}")
    return dict(value)


def _model(entry: Any, where: str, env: Mapping[str, str], keys: bool = True) -> Model:
    """The model card of a config entry (a name, or a table of Model fields with api_key_env); `where` names the
    entry in errors."""
    if isinstance(entry, str):
        return Model(entry)
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a model name or a table of Model fields")
    entry = dict(entry)
    if "api_key" in entry:
        raise ConfigError(f"{where}: keep API keys out of the config file; name an environment variable in "
                          "api_key_env instead")
    for key, kind in _MODEL_FIELDS.items():
        if key in entry:
            _check(entry[key], f"{where}.{key}", kind)
    key_env = entry.pop("api_key_env", None)
    api_key = None
    if key_env is not None:
        api_key = env.get(key_env)
        if not api_key and keys:
            raise ConfigError(f"{where}.api_key_env names {key_env!r}, which is not set in the environment")
    try:
        return Model.from_config(entry, api_key=api_key)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


@dataclass
class ServiceConfig:
    """A parsed config file: everything needed to build the service's Router, plus tenants and server settings."""

    router: Mapping[str, Any]
    models: list[Model]
    encoder: str
    state: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, Any] = field(default_factory=dict)
    feedback: dict[str, Any] = field(default_factory=dict)
    prior: dict[str, Any] = field(default_factory=dict)
    tenants: list[Tenant] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 4_000_000
    max_messages: int = 1000  # messages, content parts and tool calls in all per request (see parse_chat)
    shutdown_timeout: float = 30.0  # seconds a stopping server waits for the requests in flight (streams)
    feedback_secret: str | None = field(default=None, repr=False)
    judge: Model | None = None  # what `bandit-router score-table` grades with; not served, so its key is not needed
    judge_key_env: str | None = None  # the variable its key is read from (score-table checks it is set)

    def state_store(self) -> StateStore | None:
        namespace = self.state.get("namespace", "default")
        if "redis" in self.state:
            return RedisStateStore(self.state["redis"], namespace=namespace)
        if "sqlite" in self.state:
            return SQLiteStateStore(self.state["sqlite"], namespace=namespace)
        return None

    def make_budget(self) -> Budget | None:
        """The budget: a ledger shared by the replicas when the state is shared (in Redis, or in the SQLite file),
        else this process's own. Periods start at Unix time 0, so daily periods are UTC days on every replica."""
        if not self.budget:
            return None
        settings = {k: v for k, v in self.budget.items() if k != "limit"}
        if "period" in settings:
            settings["origin"] = 0.0
        namespace = self.state.get("namespace", "default")
        if "redis" in self.state:  # shared ledgers: hard cap only (pacer "none")
            from .ledger import RedisBudget

            return RedisBudget(self.state["redis"], self.budget["limit"], namespace=namespace, **settings)
        if "sqlite" in self.state:
            from .ledger import SQLiteBudget

            return SQLiteBudget(self.state["sqlite"], self.budget["limit"], namespace=namespace, **settings)
        return Budget(self.budget["limit"], **settings)

    def build_router(self) -> Router:
        """The Router this config describes (with its stores connected, warm-started from the [prior] table)."""
        prior = self.prior_table() if self.prior else None  # read first: a bad table fails before the encoder loads
        store = self.state_store()
        top = dict(self.router)
        waiting = {k: top.pop(k) for k in ("pending_ttl", "max_pending") if k in top}
        limits = {k: top.pop(k) for k in ("max_attempts", "expected_output_tokens", "cooldown", "cooldown_after")
                  if k in top}
        if "spend_target" in top:  # a target of its own per router: it counts this router's requests
            top["cost_weight"] = SpendTarget(top.pop("spend_target"))
        feedback = FeedbackSettings(**waiting, feedback_secret=self.feedback_secret,
                                    feedback_token_ttl=self.feedback.get("token_ttl"),
                                    source_limit=self.feedback.get("limit_per_tenant"),
                                    source_window=self.feedback.get("window", 3600.0))
        router = Router(self.models, encoder=encoder_by_name(self.encoder), budget=self.make_budget(),
                        state_store=store, feedback=feedback,
                        limits=Limits(**limits, sync_every=self.state.get("sync_every", 1.0)), **top)
        if prior is not None:
            self.warm_start(router, prior)
        return router

    def prior_table(self) -> RoutingTable:
        """The [prior] table (README "Data"; `bandit-router score-table` writes one)."""
        try:
            return load_table(self.prior["table"], invalid_rows=self.prior.get("invalid_rows", "raise"))
        except (DataFormatError, OSError) as error:
            raise ConfigError(f"prior.table {self.prior['table']!r}: {error}") from None

    def warm_start(self, router: Router, table: RoutingTable) -> None:
        """Teach `router` the table's scores and costs (costs in USD only) of the models it routes (`table_prior`;
        a table may score more, which are left out with a warning): each replica keeps them as its own base, so
        replicas that read the same table do not count it twice."""
        from ..priors import table_prior

        path = self.prior["table"]
        keep = [k for k, name in enumerate(table.models) if name in router.models]
        if not keep:
            raise ConfigError(f"prior.table {path!r} scores none of the config's models {list(router.models)}; "
                              f"it scores {table.models}")
        left_out = [name for name in table.models if name not in router.models]
        if left_out:
            log.warning("prior.table %r: the scores of %s are left out: the config does not route them", path,
                        left_out)
        usd = table.cost_unit.lower() == "usd"  # the service settles calls in USD
        if not usd:
            log.warning("prior.table %r: its costs are left out: they are in %s, the service's in usd", path,
                        table.cost_unit)
        try:
            table_prior(router, table.prompts, table.scores[:, keep], [table.models[k] for k in keep],
                        self.prior.get("strength", 1.0), costs=table.costs[:, keep] if usd else None)
        except ConfigError as error:
            raise ConfigError(f"prior.table {path!r}: {error}") from None
        log.info("warm-started from %r: %d prompts, each scored by %d of the %d models", path, len(table.prompts),
                 len(keep), len(router.models))

    def keyring(self) -> KeyRing:
        return KeyRing(self.tenants)


def parse_config(config: Mapping[str, Any], env: Mapping[str, str] | None = None, keys: bool = True) -> ServiceConfig:
    """A ServiceConfig from a parsed JSON/TOML document; ConfigError naming the field on anything invalid.

    With `keys=False` (a config read to call no model, e.g. a dry run), an API key or feedback secret variable
    that is not set is not an error: that model's card has no key, the config no secret."""
    env = os.environ if env is None else env
    if not isinstance(config, Mapping):
        raise ConfigError("the config must be a JSON object or a TOML document")
    unknown = set(config) - _TOP
    if unknown:
        raise ConfigError(f"config has unknown fields {sorted(unknown)}; allowed: {sorted(_TOP)}")
    models = config.get("models")
    if not isinstance(models, list) or not models:
        raise ConfigError("models must be a non-empty list of model names or Model tables")
    state = _section(config, "state", _STATE)
    budget = _section(config, "budget", _BUDGET)
    feedback = _section(config, "feedback", _FEEDBACK)
    server = _section(config, "server", _SERVER)
    prior = _section(config, "prior", _PRIOR)
    sections = {"": config, "state": state, "budget": budget, "feedback": feedback, "server": server, "prior": prior}
    for path, kind in _FIELDS.items():
        section, _, key = path.rpartition(".")
        if key in sections[section]:
            _check(sections[section][key], path, kind)
    if "redis" in state and "sqlite" in state:
        raise ConfigError("state names both redis and sqlite; give one store")
    shared = "redis" in state or "sqlite" in state
    if state and not shared:
        raise ConfigError("state needs redis (a redis:// URL) or sqlite (a file path): the store the replicas share")
    if budget and "limit" not in budget:
        raise ConfigError("budget needs a limit (USD per period)")
    if shared and budget.get("pacer", "none") != "none":
        raise ConfigError(f"budget.pacer must be 'none' with [state], got {budget['pacer']!r}: a ledger shared by "
                          "replicas enforces the hard cap only (pacing needs one process's view of the spend)")
    policy = config.get("policy", "shrunk-linucb")
    policy_type = policy_class(policy)  # ConfigError listing the registered policies
    try:
        policy_type.Config.from_dict(config.get("policy_settings", {}))
    except ConfigError as error:
        raise ConfigError(f"policy_settings (of policy {policy!r}): {error}") from error
    if shared and not policy_type.shares_state:
        raise ConfigError(f"state needs a policy that shares its learned state (shrunk-linucb, linucb, thompson, "
                          f"epsilon-greedy), got policy {policy!r}")
    if config.get("encoder", "").startswith("hashing:"):
        encoder_by_name(config["encoder"])  # its dimension (other encoders are loaded by build_router)
    secret = None
    if "secret_env" in feedback:
        secret = env.get(feedback["secret_env"]) or None
        if secret is None and keys:
            raise ConfigError(f"feedback.secret_env names {feedback['secret_env']!r}, which is not set in the "
                              "environment")
        if secret is not None and len(secret.encode()) < 16:
            raise ConfigError(f"feedback.secret_env names {feedback['secret_env']!r}, whose value is shorter than "
                              "the 16 bytes a feedback secret needs")
    tenants = [] if config.get("tenants") is None else config["tenants"]
    if not isinstance(tenants, list):
        raise ConfigError("tenants must be a list of {name, salt, key_sha256[, budget_key]} tables")
    if prior and "table" not in prior:
        raise ConfigError("prior needs table: the path of a routing-table folder (prompts.csv, outcomes.csv) with "
                          "the models' scores")
    router = {k: config[k] for k in ("policy", "policy_settings", "cost_weight", "seed", "tasks", "pending_ttl",
                                     "max_pending", "max_attempts", "expected_output_tokens", "cooldown",
                                     "cooldown_after", "log") if k in config}
    if "spend_target" in config:
        if "cost_weight" in config:
            raise ConfigError("set cost_weight (a fixed dial) or spend_target (USD per request), not both")
        try:
            SpendTarget(config["spend_target"])
        except ConfigError as error:
            raise ConfigError(f"spend_target: {error}") from None
        router["spend_target"] = config["spend_target"]
    entry = config.get("judge")  # not served: its key is checked by score-table, not here
    judge = None if entry is None else _model(entry, "judge", env, keys=False)
    parsed = ServiceConfig(router=router, models=[_model(m, f"models[{i}]", env, keys) for i, m in enumerate(models)],
                           encoder=config.get("encoder", "sentence-transformers/all-MiniLM-L6-v2"), state=state,
                           budget=budget, feedback=feedback, prior=prior,
                           tenants=[Tenant.from_config(_check(t, f"tenants[{i}]", _TENANT), i)
                                    for i, t in enumerate(tenants)],
                           host=server.get("host", "127.0.0.1"), port=server.get("port", 8000),
                           max_body_bytes=server.get("max_body_bytes", 4_000_000),
                           max_messages=server.get("max_messages", 1000), feedback_secret=secret,
                           judge=judge, judge_key_env=entry.get("api_key_env") if isinstance(entry, Mapping) else None,
                           shutdown_timeout=float(server.get("shutdown_timeout", 30.0)))
    parsed.keyring()  # distinct tenant names
    _distinct_keys(parsed.tenants)
    return parsed


def _distinct_keys(tenants: list[Tenant]) -> None:
    """ConfigError naming both tenants when two have the same key entry (salt and key_sha256): the key would find
    only one of them, and the other's settings would be ignored."""
    seen: dict[tuple[bytes, str], int] = {}
    for i, tenant in enumerate(tenants):
        first = seen.setdefault((bytes.fromhex(tenant.salt), tenant.key_sha256), i)
        if first != i:
            raise ConfigError(f"tenants[{first}] ({tenants[first].name!r}) and tenants[{i}] ({tenant.name!r}) have "
                              "the same salt and key_sha256: their key would be taken for one of them only, the other "
                              "never used; give each tenant its own key (`bandit-router serve --hash-key`)")


def load_config(path: str | Path, env: Mapping[str, str] | None = None, keys: bool = True) -> ServiceConfig:
    """Read a config file: TOML when it ends in .toml, else JSON (`keys`: see `parse_config`)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read config file {str(path)!r}: {error.strerror}") from None
    try:
        if path.suffix == ".toml":
            try:
                import tomllib
            except ImportError:  # Python 3.10
                raise ConfigError("TOML config files need Python >= 3.11; write the config as JSON") from None
            document = tomllib.loads(text)
        else:
            document = json.loads(text)
    except ValueError as error:  # tomllib.TOMLDecodeError is a ValueError
        raise ConfigError(f"config file {str(path)!r} is not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: "
                          f"{error}") from None
    return parse_config(document, env, keys)

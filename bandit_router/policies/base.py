"""The policy interface shared by every routing policy, and the registry of policies by name."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from ..errors import ConfigError, StateFormatError
from ..outcome import Outcome

__all__ = ["Policy", "PolicyConfig", "POLICIES", "register", "make_policy", "one_hot_argmax", "UpperConfidence", "policy_class", "policy_names"]


@dataclass(frozen=True)
class PolicyConfig:
    """Base of the frozen, validated configs; subclasses add fields and override `validate`."""

    # the settings a learned state depends on, which a loaded router keeps (None: every setting)
    STATE_SETTINGS: ClassVar[frozenset[str] | None] = None

    @classmethod
    def reloaded(cls, saved: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
        """The settings a saved policy is rebuilt with: `saved`, with `changes` to the settings its state does not
        depend on (ConfigError for a change to one it does)."""
        defaults = cls().to_dict()
        changed = sorted(k for k, v in changes.items() if k in defaults and {**defaults, **saved}[k] != v)
        refused = [k for k in changed if cls.STATE_SETTINGS is None or k in cls.STATE_SETTINGS]
        if refused:
            free = sorted(set(defaults) - cls.STATE_SETTINGS) if cls.STATE_SETTINGS is not None else []
            raise ConfigError(f"{cls.__name__}: {refused} cannot change when a router is loaded: its learned state "
                              f"depends on them; settings that can: {free or 'none'}")
        return {**saved, **changes}

    def validate(self) -> None:
        """Raise ConfigError naming any field outside its allowed range."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PolicyConfig":
        allowed = {f.name for f in fields(cls)}
        unknown = set(data) - allowed
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown settings {sorted(unknown)}; allowed: {sorted(allowed)}")
        defaults = cls()
        for key, value in data.items():  # settings often come from JSON or the command line: check their types
            kind = type(getattr(defaults, key))
            if kind in (bool, int, float, str) and (isinstance(value, bool) is not (kind is bool) or not isinstance(
                    value, (int, float) if kind is float else kind)):
                article = "an" if kind is int else "a"
                raise ConfigError(f"{cls.__name__}: {key} must be {article} {kind.__name__}, got {value!r}")
        config = cls(**data)
        config.validate()
        return config


def one_hot_argmax(utility: np.ndarray) -> np.ndarray:
    """Probabilities that put all mass on the maximisers of `utility`, split evenly among ties."""
    best = utility >= utility.max() - 1e-12
    return best / best.sum()


class UpperConfidence:
    """Mixin for policies with `predict(x, arms) -> (mean, std)` and `config.alpha`: choose the model with the
    highest upper confidence bound on quality less the dial's cost term, mean + alpha std - cost_weight cost
    (deterministic; ties split evenly)."""

    def probabilities(self, x: np.ndarray, arms: Sequence[int], cost: np.ndarray,
                      cost_weight: float) -> tuple[np.ndarray, np.ndarray]:
        mean, std = self.predict(x, arms)  # type: ignore[attr-defined]
        return one_hot_argmax(mean + self.config.alpha * std - cost_weight * cost), mean  # type: ignore[attr-defined]


class Policy(ABC):
    """Predicts each model's quality for a prompt vector and turns it into choice probabilities.

    Policies predict quality only; the router passes each request's normalised cost c_a / tau in [0, 1] and
    the request's dial, and the value of a model is quality - cost_weight * cost, so one learned state serves
    every dial. Arms are model names that can be added and removed at run time. A policy learns through
    `learn(outcomes)` only; what else it can do is declared by the class attributes below.
    """

    name: ClassVar[str]
    Config: ClassVar[type[PolicyConfig]] = PolicyConfig
    uses_features: ClassVar[bool] = False  # True: add_arm(arm, features=...) shares what is learned across models
    shares_state: ClassVar[bool] = False  # True: share(), take_delta(), install_totals(), unsynced (see store/)
    takes_prior: ClassVar[bool] = False  # True: set_prior(arm, mean, precision) and per-model A, theta (priors)

    def __init__(self, dim: int, arms: Sequence[str], config: PolicyConfig | None = None, seed: int | None = None):
        if not isinstance(dim, int) or dim < 1:
            raise ConfigError(f"dim must be a positive integer, got {dim!r}")
        self.dim = dim
        self.config = config if config is not None else self.Config()
        if not isinstance(self.config, self.Config):
            raise ConfigError(f"policy {self.name!r} takes a {self.Config.__name__}, got {type(self.config).__name__}")
        self.config.validate()
        self.rng = np.random.default_rng(seed)
        self.arms: list[str] = []
        for arm in arms:
            self.add_arm(arm)

    def index(self, arm: str) -> int:
        try:
            return self.arms.index(arm)
        except ValueError:
            raise ConfigError(f"unknown model {arm!r}; known: {self.arms}") from None

    def add_arm(self, arm: str) -> None:
        """Start learning about a new model."""
        if arm in self.arms:
            raise ConfigError(f"model {arm!r} is already known to the policy")
        self.arms.append(arm)

    def remove_arm(self, arm: str) -> None:
        """Forget a model and what was learned about it."""
        del self.arms[self.index(arm)]

    @abstractmethod
    def probabilities(self, x: np.ndarray, arms: Sequence[int], cost: np.ndarray,
                      cost_weight: float) -> tuple[np.ndarray, np.ndarray]:
        """Choice probabilities over `arms` (indices into self.arms) and their predicted quality.

        `cost[i]` is arm i's predicted cost for this request divided by tau; `cost_weight` is the dial in [0, 1].
        """

    def learn(self, outcomes: Sequence[Outcome]) -> None:
        """Learn from observed outcomes: the one way every reward reaches a policy (feedback, expiry, observe,
        priors, replays). Policies that do not learn keep this no-op."""

    def check_unweighted(self, outcomes: Sequence[Outcome]) -> None:
        """ConfigError unless every outcome counts as one observation (for policies that cannot weight them)."""
        if any(o.weight != 1.0 for o in outcomes):
            raise ConfigError(f"policy {self.name!r} cannot weight observations; use strength 1")

    def state(self) -> dict[str, np.ndarray]:
        """Learned state as named arrays (empty for policies that do not learn)."""
        return {}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore arrays produced by `state()` for the same arms and dim."""
        expected = self.state()
        if set(state) != set(expected):
            raise StateFormatError(f"policy {self.name!r} state has arrays {sorted(state)}, expected {sorted(expected)}")
        for key, value in state.items():
            if value.shape != expected[key].shape:
                raise StateFormatError(f"policy {self.name!r} array {key!r} has shape {value.shape}, "
                                       f"expected {expected[key].shape}")
        self._set_state({k: np.array(v, dtype=expected[k].dtype) for k, v in state.items()})

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        """Install validated arrays; policies with state override this."""


POLICIES: dict[str, type[Policy]] = {}  # registered so far; barp registers on first use (policy_names: all)


def register(cls: type[Policy]) -> type[Policy]:
    """Class decorator adding a policy to the registry under `cls.name`."""
    POLICIES[cls.name] = cls
    return cls


# Policies whose module is imported on first use: barp needs torch, which takes about a second to import.
LAZY_POLICIES = {"barp": "bandit_router.policies.barp"}


def policy_names() -> list[str]:
    """Every policy name `make_policy` accepts."""
    return sorted(set(POLICIES) | set(LAZY_POLICIES))


def policy_class(name: str) -> type[Policy]:
    """The policy class registered under `name`, importing its module if it is one of the lazy ones."""
    if name not in POLICIES and name in LAZY_POLICIES:
        importlib.import_module(LAZY_POLICIES[name])
    if name not in POLICIES:
        raise ConfigError(f"unknown policy {name!r}; registered: {policy_names()} (a policy of your own: import "
                          "the module that registers it first)")
    return POLICIES[name]


def make_policy(name: str, dim: int, arms: Sequence[str], seed: int | None = None,
                **settings: Any) -> Policy:
    """Build a registered policy by name with settings checked against its config."""
    cls = policy_class(name)
    return cls(dim, arms, cls.Config.from_dict(settings), seed=seed)

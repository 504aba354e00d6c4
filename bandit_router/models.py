"""Model cards: a LiteLLM model name with its prices, limits, capabilities and how to call it."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

from .errors import ConfigError

__all__ = ["Model", "estimate_tokens"]


def estimate_tokens(text: str) -> int:
    """Cheap token estimate used for cost prediction: one token per four characters, at least one."""
    return max(1, math.ceil(len(text) / 4))


def _litellm_info(name: str) -> Mapping[str, Any]:
    """What LiteLLM's bundled cost map knows of `name` (empty if nothing)."""
    import litellm  # imported here: no I/O or heavy import at package import time

    bare = name.split("/", 1)[1] if "/" in name else name
    return litellm.model_cost.get(name) or litellm.model_cost.get(bare) or {}


@dataclass(frozen=True)
class Model:
    """One model the router may choose.

    Prices are USD per token. Left as None, prices, context window, output limit, tool and image support are taken
    from LiteLLM's bundled cost map; a model whose prices are neither given nor known raises ConfigError
    (never a silent $0). `api_key` is used for calls only: it is excluded from repr, saved state and logs.
    """

    name: str
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None
    supports_tools: bool | None = None
    description: str = ""
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False, compare=False)
    params: Mapping[str, Any] = field(default_factory=dict)
    supports_vision: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError("Model.name must be a non-empty LiteLLM model name, e.g. 'openai/gpt-4o-mini'")
        info = _litellm_info(self.name) if None in (
            self.input_cost_per_token, self.output_cost_per_token, self.context_window,
            self.max_output_tokens, self.supports_tools, self.supports_vision) else {}
        resolved = {
            "input_cost_per_token": info.get("input_cost_per_token"),
            "output_cost_per_token": info.get("output_cost_per_token"),
            "context_window": info.get("max_input_tokens") or info.get("max_tokens"),
            "max_output_tokens": info.get("max_output_tokens"),
            "supports_tools": info.get("supports_function_calling"),
            "supports_vision": info.get("supports_vision"),
        }
        for key, value in resolved.items():
            if getattr(self, key) is None and value is not None:
                object.__setattr__(self, key, value)
        for key in ("input_cost_per_token", "output_cost_per_token"):
            value = getattr(self, key)
            if value is None:
                raise ConfigError(
                    f"Model {self.name!r}: {key} is unknown to LiteLLM's cost map; give it explicitly (USD per token, >= 0)")
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"Model {self.name!r}: {key} must be a finite number >= 0, got {value!r}")
        for key in ("context_window", "max_output_tokens"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"Model {self.name!r}: {key} must be a positive integer or None, got {value!r}")
        if "api_key" in self.params:
            raise ConfigError(f"Model {self.name!r}: pass api_key as Model(api_key=...), not in params")
        object.__setattr__(self, "params", dict(self.params))

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """USD cost of a call with these token counts at this model's prices."""
        return prompt_tokens * self.input_cost_per_token + completion_tokens * self.output_cost_per_token

    def call_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for litellm.completion that select and reach this model."""
        kwargs = {"model": self.name, **self.params}
        if self.api_base is not None:
            kwargs["api_base"] = self.api_base
        if self.api_key is not None:
            kwargs["api_key"] = self.api_key
        return kwargs

    def to_config(self) -> dict[str, Any]:
        """A JSON-safe description of the card, without the API key."""
        config = asdict(self)
        del config["api_key"]
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any], api_key: str | None = None) -> "Model":
        """Rebuild a card saved by `to_config`; unknown keys are a ConfigError."""
        known = {f.name for f in fields(cls)} - {"api_key"}
        unknown = set(config) - known
        if unknown:
            raise ConfigError(f"model config has unknown fields {sorted(unknown)}; allowed: {sorted(known)}")
        return cls(**config, api_key=api_key)

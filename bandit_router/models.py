"""Model cards: a LiteLLM model name with its prices, limits, capabilities and how to call it."""

from __future__ import annotations

import json
import math
import numbers
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterator, Mapping
from urllib.parse import urlsplit

from .errors import ConfigError
from .redaction import hide

__all__ = ["Model", "estimate_tokens", "check_usd", "check_tokens", "is_credential", "split_credentials", "merge_params",
           "output_limit", "quiet_litellm"]

# A param or header whose name matches is a credential: "api-key", "Authorization", "aws_secret_access_key",
# "aws_session_token", "vertex_credentials", "azure_ad_token", "password"... but not "max_tokens".
_CREDENTIAL = re.compile(r"key|secret|token(?!s)|passw|credential|auth|cookie|signature", re.IGNORECASE)
_HEADERS = re.compile(r"header", re.IGNORECASE)


def is_credential(name: object) -> bool:
    """Whether a param or header named `name` carries a credential."""
    return isinstance(name, str) and bool(_CREDENTIAL.search(name))


def split_credentials(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(public params, credentials) of LiteLLM params: credential-named params, and credential-named headers of
    header dicts (extra_headers, headers), go to the credentials."""
    public: dict[str, Any] = {}
    secret: dict[str, Any] = {}
    for name, value in params.items():
        if is_credential(name):
            secret[name] = value
        elif _HEADERS.search(str(name)) and isinstance(value, Mapping):
            public[name] = {h: v for h, v in value.items() if not is_credential(h)}
            hidden = {h: v for h, v in value.items() if is_credential(h)}
            if hidden:
                secret[name] = hidden
        else:
            public[name] = value
    return public, secret


def masked(params: Mapping[str, Any]) -> dict[str, Any]:
    """`params` with every credential value (see `split_credentials`) shown as "[REDACTED]": for reprs and dumps."""
    public, secret = split_credentials(params)
    return merge_params(public, {name: {h: "[REDACTED]" for h in value} if isinstance(value, Mapping)
                                 and _HEADERS.search(str(name)) else "[REDACTED]" for name, value in secret.items()})


def output_limit(kwargs: Mapping[str, Any]) -> int | None:
    """The output tokens per answer LiteLLM arguments allow: max_tokens, else max_completion_tokens (OpenAI's newer
    name for the same limit); None: neither."""
    limit = kwargs.get("max_tokens")
    return kwargs.get("max_completion_tokens") if limit is None else limit


def credential_texts(params: Mapping[str, Any]) -> list[str]:
    """Every credential text in LiteLLM `params` (a call's kwargs), as logs may show it."""
    return [t for t in _texts(split_credentials(params)[1]) if t]


def merge_params(public: Mapping[str, Any], secret: Mapping[str, Any]) -> dict[str, Any]:
    """`public` params with `secret` ones added back (header dicts merged)."""
    merged = dict(public)
    for name, value in secret.items():
        if isinstance(value, Mapping) and isinstance(merged.get(name), Mapping):
            merged[name] = {**merged[name], **value}
        else:
            merged[name] = value
    return merged


def _texts(value: Any) -> Iterator[str]:
    """Every text a credential value holds, in the forms logs may show it (whole, per word, JSON fields)."""
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, (str, bytes)):
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        yield text
        yield from (word for word in text.split() if len(word) >= 8)  # "Bearer <token>": the token alone too
        if text.lstrip().startswith("{"):
            try:
                yield from _texts(json.loads(text))  # a service-account JSON: each field
            except ValueError:
                pass


def _check_url(model: str, key: str, url: Any) -> None:
    if url is None:
        return
    if not isinstance(url, str):
        raise ConfigError(f"Model {model!r}: {key} must be a URL string or None, got {type(url).__name__}")
    try:
        parts = urlsplit(url)
        userinfo = parts.username is not None or parts.password is not None
    except ValueError:
        raise ConfigError(f"Model {model!r}: {key} is not a valid URL") from None
    if userinfo:  # never echo the URL: it holds the credential
        raise ConfigError(f"Model {model!r}: {key} must not carry credentials (user:password@host); pass them as "
                          "Model(api_key=...) or params={'extra_headers': {'Authorization': ...}}")


def _check_provider(model: str, api_base: str, provider: Any) -> None:
    """ConfigError when LiteLLM cannot tell which provider serves `model` at `api_base`: every call would fail."""
    try:
        quiet_litellm().get_llm_provider(model=model, api_base=api_base, custom_llm_provider=provider)
    except Exception:  # LiteLLM's BadRequestError: "LLM Provider NOT provided"
        raise ConfigError(f"Model {model!r}: LiteLLM cannot tell which provider serves it at {api_base}: name it "
                          f"'<provider>/{model}' ('openai/{model}' for an OpenAI-compatible server), or give "
                          "params={'custom_llm_provider': ...}") from None


def estimate_tokens(text: str) -> int:
    """Cheap token estimate used for cost prediction: one token per four characters, at least one."""
    return max(1, math.ceil(len(text) / 4))


def check_usd(value: Any, field: str) -> float:
    """A cost in USD as a float >= 0, or ConfigError naming `field`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < math.inf:
        raise ConfigError(f"{field} must be a finite number >= 0 (USD), got {value!r}")
    return float(value)


def check_tokens(value: Any, field: str) -> None:
    """ConfigError naming `field` unless `value` is None or an integer >= 1 (a token count)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1):
        raise ConfigError(f"{field} must be an integer >= 1 or None, got {value!r}")


def quiet_litellm() -> Any:
    """LiteLLM, imported on first use and told not to print its "Give Feedback / Get Help" banner on every failure
    (the router reports the failures it recovers from itself)."""
    import litellm

    litellm.suppress_debug_info = True
    return litellm


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
    Other credentials given in `params` (see `is_credential`: e.g. aws_secret_access_key, vertex_credentials,
    an Authorization or api-key header in extra_headers) are moved to `credentials`, which is treated like
    api_key: used for calls, redacted from logs, never in repr, equality or saved state. `api_base` may not
    carry credentials in its URL (user:password@): ConfigError.
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
    credentials: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
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
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"Model {self.name!r}: {key} must be a positive integer or None, got {value!r}")
        for key in ("supports_tools", "supports_vision"):
            if getattr(self, key) is not None and not isinstance(getattr(self, key), bool):
                raise ConfigError(f"Model {self.name!r}: {key} must be True, False or None, got {getattr(self, key)!r}")
        if not isinstance(self.description, str):
            raise ConfigError(f"Model {self.name!r}: description must be a str, got {self.description!r}")
        if not isinstance(self.params, Mapping) or not isinstance(self.credentials, Mapping):
            raise ConfigError(f"Model {self.name!r}: params and credentials must be mappings of LiteLLM arguments")
        if "api_key" in self.params or "api_key" in self.credentials:
            raise ConfigError(f"Model {self.name!r}: pass api_key as Model(api_key=...), not in params")
        if self.api_key is not None and not isinstance(self.api_key, str):
            raise ConfigError(f"Model {self.name!r}: api_key must be a str or None, got {type(self.api_key).__name__}")
        public, secret = split_credentials(self.params)
        object.__setattr__(self, "params", public)
        object.__setattr__(self, "credentials", merge_params(secret, self.credentials))
        for key, url in (("api_base", self.api_base), ("params['api_base']", public.get("api_base")),
                         ("params['base_url']", public.get("base_url"))):
            _check_url(self.name, key, url)
        if self.api_base is not None:
            _check_provider(self.name, self.api_base, public.get("custom_llm_provider"))
        hide(self.secret_texts())

    def secret_texts(self) -> list[str]:
        """Every credential text of the card (api_key and `credentials`), as logs may show it."""
        return [t for t in _texts([self.api_key or "", dict(self.credentials)]) if t]

    @property
    def listed_prices(self) -> bool:
        """Whether the card's prices are those LiteLLM's cost map lists for its name: LiteLLM's own cost of a call
        (which also prices cached tokens) is then at the card's prices."""
        info = _litellm_info(self.name)
        return (info.get("input_cost_per_token"), info.get("output_cost_per_token")) == (
            self.input_cost_per_token, self.output_cost_per_token)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """USD cost of a call with these token counts at this model's prices."""
        return prompt_tokens * self.input_cost_per_token + completion_tokens * self.output_cost_per_token

    def call_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for litellm.completion that select and reach this model."""
        kwargs = {"model": self.name, **merge_params(self.params, self.credentials)}
        if self.api_base is not None:
            kwargs["api_base"] = self.api_base
        if self.api_key is not None:
            kwargs["api_key"] = self.api_key
        return kwargs

    def to_config(self) -> dict[str, Any]:
        """A JSON-safe description of the card, without the API key and credentials."""
        config = asdict(self)
        del config["api_key"], config["credentials"]
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any], api_key: str | None = None,
                    credentials: Mapping[str, Any] | None = None) -> "Model":
        """Rebuild a card saved by `to_config`, given its API key and credentials again; unknown keys are a
        ConfigError."""
        known = {f.name for f in fields(cls)} - {"api_key", "credentials"}
        unknown = set(config) - known
        if unknown:
            raise ConfigError(f"model config has unknown fields {sorted(unknown)}; allowed: {sorted(known)}")
        if "name" not in config:
            raise ConfigError(f"model config needs a name (its LiteLLM model name); got the fields {sorted(config)}")
        return cls(**config, api_key=api_key, credentials=credentials or {})

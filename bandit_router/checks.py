"""Checks of the values callers pass: the dial, a feedback score, a prompt, a list of model names, the arguments
passed on to LiteLLM."""

from __future__ import annotations

import math
import re
from difflib import get_close_matches
from typing import Any, Collection, Iterable, Mapping, Sequence

import numpy as np

from .decision import messages_of, query_text
from .errors import ConfigError, InvalidPromptError

__all__ = ["check_cost_weight", "check_score", "check_prompt", "check_positive", "check_non_negative",
           "check_integer", "check_model_names", "check_budget_key", "check_call_kwargs", "CALL_KWARGS",
           "json_too_deep"]

_NUMBER = (int, float, np.integer, np.floating)  # bool is excluded separately
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"?|([\[\]{}])', re.DOTALL)  # a string (skipped), or a bracket


def json_too_deep(text: str, limit: int = 32) -> bool:
    """Whether JSON `text` nests deeper than `limit` (json.loads would recurse that far), in time linear in the
    text's length (also when it is full of unclosed quotes)."""
    depth = 0
    for bracket in _JSON_TOKENS.findall(text):
        depth += 1 if bracket in ("[", "{") else -1 if bracket else 0
        if depth > limit:
            return True
    return False


def check_cost_weight(value: Any, field: str = "cost_weight") -> float:
    """The dial as a float in [0, 1], or ConfigError naming `field`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{field} must be a number in [0, 1] (0 = quality only), got {value!r}")
    return float(value)


def check_model_names(names: Any, known: Collection[str], field: str = "models") -> list[str]:
    """`names` as a non-empty list of names from `known`, or ConfigError naming `field` (a single string is
    refused: it would be read as a list of its characters)."""
    if isinstance(names, (str, bytes)) or not isinstance(names, Iterable):
        raise ConfigError(f"{field} must be a list of model names, got {names!r}"
                          + (f"; write [{names!r}]" if isinstance(names, str) else ""))
    names = list(names)
    if not names:
        raise ConfigError(f"{field} must name at least one model (known: {list(known)})")
    unknown = [m for m in names if m not in known]
    if unknown:
        raise ConfigError(f"{field} contains unknown names {unknown}; known: {list(known)}")
    return names


def _unit(unit: str) -> str:
    return f" ({unit})" if unit else ""


def check_positive(value: Any, field: str, upper: float = math.inf, *, unit: str = "") -> float:
    """`value` as a float in (0, upper] (finite), or ConfigError naming `field` (and the `unit` it is in)."""
    if isinstance(value, bool) or not isinstance(value, _NUMBER) or not (0 < value <= upper and math.isfinite(value)):
        bound = "a finite number > 0" if upper == math.inf else f"a number in (0, {upper:g}]"
        raise ConfigError(f"{field} must be {bound}{_unit(unit)}, got {value!r}")
    return float(value)


def check_non_negative(value: Any, field: str, unit: str = "", *, upper: float = math.inf) -> float:
    """`value` as a float in [0, upper] (finite), or ConfigError naming `field` (and the `unit` it is in, e.g.
    "USD")."""
    if isinstance(value, bool) or not isinstance(value, _NUMBER) or not (0 <= value <= upper and math.isfinite(value)):
        bound = "a finite number >= 0" if upper == math.inf else f"a number in [0, {upper:g}]"
        raise ConfigError(f"{field} must be {bound}{_unit(unit)}, got {value!r}")
    return float(value)


def check_integer(value: Any, field: str, low: int, high: int) -> int:
    """`value` as an int in [low, high] (not a bool), or ConfigError naming `field`."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{field} must be an integer in [{low}, {high}], got {value!r}")
    return value


def check_score(value: Any, field: str = "score") -> float:
    """A feedback score as a float in [0, 1], or ConfigError naming `field`."""
    if isinstance(value, bool) or not isinstance(value, _NUMBER):
        raise ConfigError(f"{field} must be a number in [0, 1], got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{field} must be a finite number in [0, 1], got {value!r}")
    return float(value)


def check_prompt(prompt: Any, max_chars: int) -> tuple[str, str]:
    """(text to encode, full text) of a prompt string or chat messages, or InvalidPromptError if the prompt is
    not text, is not valid UTF-8 (e.g. lone surrogates from undecodable bytes) or exceeds `max_chars`."""
    query, full_text = query_text(messages_of(prompt))
    if len(full_text) > max_chars:
        raise InvalidPromptError(f"prompt has {len(full_text)} characters; max_prompt_chars allows at most {max_chars}")
    try:
        full_text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidPromptError(f"prompt is not valid UTF-8 text (character {error.start} cannot be encoded)") from None
    return query, full_text



def check_budget_key(value: Any) -> str | None:
    """`value` as a budget key (a user or tenant account): a non-empty string (a budget's ledger saves keys as JSON
    strings, and "" is the global account's) or None; ConfigError otherwise."""
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f"budget_key must be a non-empty string or None, got {value!r}")
    return value

# Per-call kwargs that complete/stream (and so the wrappers and the service) accept besides routing ones: OpenAI
# chat-completion parameters LiteLLM maps, and LiteLLM's own call settings. Anything else is most likely a typo and
# is refused before it reaches a provider.
CALL_KWARGS = frozenset({
    "temperature", "top_p", "n", "stop", "max_tokens", "max_completion_tokens", "presence_penalty",
    "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "seed", "user", "response_format", "tools",
    "tool_choice", "parallel_tool_calls", "stream_options", "reasoning_effort", "modalities", "audio",
    "prediction", "service_tier", "store", "metadata", "web_search_options", "thinking", "extra_headers",
    "extra_body", "timeout", "max_retries", "num_retries", "mock_response", "drop_params", "budget_key", "task",
    "api_version", "top_k", "safety_identifier", "verbosity", "mock_delay"})


_RANGES = {"temperature": (0.0, 2.0), "top_p": (0.0, 1.0), "presence_penalty": (-2.0, 2.0),
           "frequency_penalty": (-2.0, 2.0)}  # OpenAI's ranges of its sampling arguments
_COUNTS = {"n": (1, 128), "top_logprobs": (0, 20), "seed": (-2**63, 2**63 - 1)}
_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "logprobs": (bool, "true or false"), "parallel_tool_calls": (bool, "true or false"), "user": (str, "a string"),
    "logit_bias": (Mapping, "an object of token id -> bias"), "tool_choice": ((str, Mapping), "a string or an object")}


def check_call_kwargs(kwargs: Mapping[str, Any]) -> None:
    """Refuse unknown call kwargs (naming the closest known one), OpenAI's arguments out of their range or of the
    wrong type, and a response_format that is not one."""
    for key in kwargs:
        if key not in CALL_KWARGS:
            close = get_close_matches(key, CALL_KWARGS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown call argument {key!r}{hint} (allowed: {sorted(CALL_KWARGS)}; other LiteLLM "
                              f"arguments go in the model card's params)")
    given = {key: value for key, value in kwargs.items() if value is not None}
    for key in ("max_tokens", "max_completion_tokens"):
        value = given.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{key} must be an integer >= 1 or None, got {value!r}")
    for key, (low, high) in _RANGES.items():
        value = given.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not low <= value <= high):
            raise ConfigError(f"{key} must be a number in [{low:g}, {high:g}], got {value!r}")
    for key, (low, high) in _COUNTS.items():
        if key in given:
            check_integer(given[key], key, low, high)
    for key, (kind, what) in _TYPES.items():
        if key in given and (not isinstance(given[key], kind) or (kind is not bool and isinstance(given[key], bool))):
            raise ConfigError(f"{key} must be {what}, got {given[key]!r}")
    stop = given.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
            isinstance(stop, Sequence) and all(isinstance(s, str) for s in stop)):
        raise ConfigError(f"stop must be a string or a list of strings, got {stop!r}")
    tools = given.get("tools")
    if tools is not None and (isinstance(tools, (str, Mapping)) or not isinstance(tools, Sequence)
                              or not all(isinstance(t, Mapping) for t in tools)):
        raise ConfigError(f"tools must be a list of tool objects ({{'type': 'function', 'function': {{...}}}}), "
                          f"got {tools!r}"[:300])
    shape = kwargs.get("response_format")  # LiteLLM raises a malformed one as a connection error, model by model
    if shape is not None and not isinstance(shape, type) and not (
            isinstance(shape, Mapping) and shape.get("type") in ("text", "json_object", "json_schema")):
        raise ConfigError(f"response_format must be {{'type': 'text' | 'json_object' | 'json_schema', ...}} or a "
                          f"Pydantic class, got {shape!r}")

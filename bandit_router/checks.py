"""Checks of the values callers pass: the dial, a feedback score, a prompt, a list of model names."""

from __future__ import annotations

import math
import re
from typing import Any, Collection, Iterable

import numpy as np

from .decision import messages_of, query_text
from .errors import ConfigError, InvalidPromptError

__all__ = ["check_cost_weight", "check_score", "check_prompt", "check_positive", "check_non_negative",
           "check_integer", "check_model_names", "json_too_deep"]

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

"""What the router decided for one request, and what a routed call returned."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .errors import InvalidPromptError

__all__ = ["Decision", "Completion", "ROLES", "has_image", "messages_of", "query_text", "usage_of"]

ROLES = ("system", "developer", "user", "assistant", "tool", "function")  # the chat roles providers accept

Messages = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class Decision:
    """One routing decision.

    `propensity` is the probability the policy gave `model` (what off-policy evaluation needs);
    `predicted_quality`, `predicted_cost` (the cards' cost unit: USD unless priced otherwise; of the whole call,
    all `n` answers it asks for) and `probabilities` cover every eligible model;
    `failed` lists models tried before `model` that raised a provider error (empty when none did);
    `feedback_token` is the signed token feedback must bring when the router has a feedback_secret;
    `task` is the kind of request it was routed as (one of the router's `tasks`; None: the prompt alone);
    `unaffordable` lists models otherwise eligible that the budget left out (their worst case did not fit what is
    left, or the pacer held them back).
    """

    route_id: str
    model: str
    propensity: float
    cost_weight: float
    predicted_quality: Mapping[str, float]
    predicted_cost: Mapping[str, float]
    probabilities: Mapping[str, float]
    created_at: float
    failed: tuple[str, ...] = ()
    feedback_token: str | None = None
    task: str | None = None
    unaffordable: tuple[str, ...] = ()

    @classmethod
    def made(cls, names: Sequence[str], choice: int, probabilities: Sequence[float], quality: Sequence[float],
             cost: Sequence[float], cost_weight: float, task: str | None,
             unaffordable: Sequence[str] = ()) -> "Decision":
        """A new decision (fresh route id, made now) for `names[choice]` among `names`."""
        return cls(route_id=uuid.uuid4().hex, model=names[choice], propensity=float(probabilities[choice]),
                   cost_weight=cost_weight, predicted_quality=dict(zip(names, map(float, quality))),
                   predicted_cost=dict(zip(names, map(float, cost))),
                   probabilities=dict(zip(names, map(float, probabilities))), created_at=time.time(), task=task,
                   unaffordable=tuple(unaffordable))

    def ranking(self) -> list[str]:
        """Eligible models from most to least preferred: the chosen one first, then by probability, then by
        predicted value (quality less the dial's cost term)."""
        tau = max(self.predicted_cost.values()) or 1.0

        def key(name: str) -> tuple[float, float]:
            quality = self.predicted_quality[name]
            quality = 0.0 if quality != quality else quality  # NaN from policies that do not predict quality
            return self.probabilities[name], quality - self.cost_weight * self.predicted_cost[name] / tau

        others = sorted((m for m in self.probabilities if m != self.model), key=key, reverse=True)
        return [self.model, *others]


@dataclass
class Completion:
    """A routed LiteLLM response with its decision and its real cost in USD (from LiteLLM's usage)."""

    response: Any
    decision: Decision
    cost: float
    usage: Mapping[str, int] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.response.choices[0].message.content or ""


def messages_of(prompt: str | Messages) -> list[dict[str, Any]]:
    """Chat messages from a prompt string or a sequence of message dicts; InvalidPromptError for anything else."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, (bytes, bytearray, memoryview)):
        raise InvalidPromptError("prompt must be str or chat messages, got bytes; decode it as UTF-8 first")
    if not isinstance(prompt, Sequence):
        raise InvalidPromptError(f"prompt must be str or chat messages (a list of dicts), got "
                                 f"{type(prompt).__name__}")
    try:
        messages = [dict(m) for m in prompt]
    except (TypeError, ValueError):
        messages = []
    if not messages or any("role" not in m for m in messages):
        raise InvalidPromptError("messages must be a non-empty sequence of dicts with a 'role' key")
    for i, message in enumerate(messages):
        if message["role"] not in ROLES:
            raise InvalidPromptError(f"messages[{i}].role must be one of {', '.join(ROLES)}; got {message['role']!r}")
        _content_text(message.get("content"), f"messages[{i}].content")
    return messages


def has_image(messages: Messages) -> bool:
    """Whether chat `messages` hold an image: an `image_url` or `image` content part."""
    return any(isinstance(m.get("content"), (list, tuple)) and any(
        isinstance(p, Mapping) and p.get("type") in ("image_url", "image") for p in m["content"]) for m in messages)


def _content_text(content: Any, field: str) -> str:
    """The text of a message's content: a string, None, or a list of parts ({"type": "text", "text": ...})."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, (list, tuple)) or not all(isinstance(part, Mapping) for part in content):
        raise InvalidPromptError(f"{field} must be a string or a list of content parts, got {type(content).__name__}")
    texts = [part.get("text", "") for part in content]
    if not all(isinstance(text, str) for text in texts):
        raise InvalidPromptError(f"{field} has a content part whose 'text' is not a string")
    return "\n".join(texts)


def query_text(messages: Messages) -> tuple[str, str]:
    """(text the router encodes, text whose length sets the prompt's token count).

    The encoded text is the last user message (what the request is about) followed by what came after it (an
    agent's tool results and intermediate replies, so each step of an agent run is routed as its own request);
    the token count covers every message.
    """
    texts = [_content_text(m.get("content"), f"messages[{i}].content") for i, m in enumerate(messages)]
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=len(messages) - 1)
    return "\n".join(t for t in texts[last_user:] if t), "\n".join(texts)


def usage_of(response: Any) -> dict[str, int]:
    """Token counts of a LiteLLM response or final stream chunk (zeros where the provider gave none)."""
    usage = getattr(response, "usage", None)
    get = (lambda k: getattr(usage, k, None) or 0) if usage is not None else (lambda k: 0)
    return {"prompt_tokens": int(get("prompt_tokens")), "completion_tokens": int(get("completion_tokens")),
            "total_tokens": int(get("total_tokens"))}

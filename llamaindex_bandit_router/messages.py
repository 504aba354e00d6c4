"""LlamaIndex ChatMessage <-> OpenAI-style message dicts (the format the core Router and LiteLLM speak)."""

from __future__ import annotations

import json
from typing import Any, Sequence

from llama_index.core.base.llms.types import (ChatMessage, ImageBlock, MessageRole, TextBlock, ThinkingBlock,
                                              ToolCallBlock)

from bandit_router import ConfigError

__all__ = ["to_openai", "from_openai", "StreamedMessage"]

_ROLES = {MessageRole.CHATBOT.value: "assistant", MessageRole.MODEL.value: "assistant"}  # other integrations' names


def _arguments(kwargs: dict[str, Any] | str) -> str:
    return kwargs if isinstance(kwargs, str) else json.dumps(kwargs)


def _kwargs(arguments: str | None) -> dict[str, Any] | str:
    """Tool-call arguments as a dict, or the raw string while it is not (yet) a JSON object."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return arguments or ""
    return value if isinstance(value, dict) else arguments or ""


def _legacy_tool_call(call: Any) -> dict[str, Any]:
    """An OpenAI tool call kept in `additional_kwargs["tool_calls"]` by older integrations, as a dict."""
    call = call.model_dump() if hasattr(call, "model_dump") else dict(call)
    function = dict(call["function"])
    return {"id": call.get("id"), "type": "function",
            "function": {"name": function["name"], "arguments": _arguments(function.get("arguments") or {})}}


def _image(block: ImageBlock) -> dict[str, Any]:
    """An OpenAI image part: the block's URL, or its image (bytes or file) as a base64 data URL."""
    if block.url is not None:
        url = str(block.url)
    else:
        data = block.resolve_image(as_base64=True).read().decode("ascii")
        url = f"data:{block.image_mimetype or 'image/png'};base64,{data}"
    return {"type": "image_url", "image_url": {"url": url, **({"detail": block.detail} if block.detail else {})}}


def _to_openai(message: ChatMessage) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    tool_calls: list[dict[str, Any]] = []
    for block in message.blocks:
        if isinstance(block, TextBlock):
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, ImageBlock):
            parts.append(_image(block))
        elif isinstance(block, ToolCallBlock):
            tool_calls.append({"id": block.tool_call_id, "type": "function",
                               "function": {"name": block.tool_name, "arguments": _arguments(block.tool_kwargs)}})
        elif not isinstance(block, ThinkingBlock):  # another model's reasoning is not sent back
            raise ConfigError(f"message blocks must be text, images or tool calls; got a {block.block_type!r} block")
    if not tool_calls:  # blocks are the source of truth; additional_kwargs mirror them (see `from_openai`)
        tool_calls = [_legacy_tool_call(c) for c in message.additional_kwargs.get("tool_calls") or ()]
    role = _ROLES.get(message.role.value, message.role.value)
    text = "\n".join(p["text"] for p in parts if p["type"] == "text")
    content: Any = parts if any(p["type"] == "image_url" for p in parts) else (
        text if parts or not tool_calls else None)
    out: dict[str, Any] = {"role": role, "content": content}
    if tool_calls:
        out["tool_calls"] = tool_calls
    if role == MessageRole.TOOL.value:
        out["tool_call_id"] = message.additional_kwargs.get("tool_call_id")
    return out


def to_openai(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """OpenAI chat messages (text, images, tool calls, tool results) from LlamaIndex ones."""
    return [_to_openai(m) for m in messages]


def _assistant(text: str, calls: Sequence[tuple[str | None, str, str]], info: dict[str, Any]) -> ChatMessage:
    """An assistant message: text, ToolCallBlocks for `calls` (id, name, arguments), the same calls in OpenAI form
    under additional_kwargs["tool_calls"] (where llama-index-core's streaming parsers look) and the routing `info`."""
    blocks: list[Any] = [TextBlock(text=text)] if text else []
    blocks += [ToolCallBlock(tool_call_id=i, tool_name=n, tool_kwargs=_kwargs(a)) for i, n, a in calls]
    extra: dict[str, Any] = dict(info)
    if calls:
        extra["tool_calls"] = [{"id": i, "type": "function", "function": {"name": n, "arguments": a}}
                               for i, n, a in calls]
    return ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks, additional_kwargs=extra)


def from_openai(message: Any, info: dict[str, Any] | None = None) -> ChatMessage:
    """A LlamaIndex assistant message from a LiteLLM/OpenAI one, carrying the routing `info`."""
    calls = [(c.id, c.function.name, c.function.arguments or "") for c in message.tool_calls or ()]
    return _assistant(message.content or "", calls, info or {})


class StreamedMessage:
    """Accumulates LiteLLM stream chunks into the assistant message received so far."""

    def __init__(self) -> None:
        self.text = ""
        self._calls: dict[int, dict[str, str]] = {}

    def add(self, chunk: Any) -> str | None:
        """Take one chunk; returns its text delta, or None if it changed nothing (role or usage chunks)."""
        if not chunk.choices:
            return None
        delta = chunk.choices[0].delta
        text = delta.content or ""
        self.text += text
        for part in getattr(delta, "tool_calls", None) or ():
            call = self._calls.setdefault(part.index or 0, {"id": "", "name": "", "arguments": ""})
            call["id"] = part.id or call["id"]
            call["name"] += getattr(part.function, "name", None) or ""
            call["arguments"] += getattr(part.function, "arguments", None) or ""
        return text if text or getattr(delta, "tool_calls", None) else None

    def message(self, info: dict[str, Any] | None = None) -> ChatMessage:
        """The message so far, carrying the routing `info`."""
        calls = [(c["id"] or None, c["name"], c["arguments"]) for _, c in sorted(self._calls.items())]
        return _assistant(self.text, calls, info or {})

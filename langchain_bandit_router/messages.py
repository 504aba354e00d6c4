"""Translation between LangChain messages and the OpenAI-style dicts and LiteLLM responses the router speaks."""

from __future__ import annotations

from typing import Any, Sequence

from langchain_core.exceptions import OutputParserException
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, convert_to_openai_messages
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.output_parsers.openai_tools import make_invalid_tool_call, parse_tool_call

from bandit_router import Decision
from bandit_router.feedback import route_metadata as kit_metadata

__all__ = ["route_metadata", "to_chunk", "to_message", "to_openai", "usage_metadata"]


def to_openai(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """OpenAI chat messages for LangChain `messages`; an AI message keeps its text and tool calls only."""
    converted = []
    for message in messages:
        item = convert_to_openai_messages(message)
        if isinstance(message, AIMessage):
            item["content"] = message.text
        converted.append(item)
    return converted


def usage_metadata(usage: dict[str, int]) -> UsageMetadata:
    return UsageMetadata(input_tokens=usage.get("prompt_tokens", 0), output_tokens=usage.get("completion_tokens", 0),
                         total_tokens=usage.get("total_tokens", 0))


def route_metadata(decision: Decision, cost: float | None = None) -> dict[str, Any]:
    """What `response_metadata` reports about the routing (the kit's route metadata with LangChain's
    `model_name` key): route_id, the model used, the dial, the propensity, the models that failed before it, the
    feedback_token (None unless the router signs), the task (None: none) and, when given, the cost in USD."""
    return kit_metadata(decision, cost, model_key="model_name")


def _raw(call: Any) -> dict[str, Any]:
    return call.model_dump() if hasattr(call, "model_dump") else dict(call)


def to_message(response: Any, decision: Decision, cost: float, usage: dict[str, int]) -> AIMessage:
    """The AIMessage of a LiteLLM chat-completion response."""
    choice = response.choices[0]
    tool_calls, invalid = [], []
    for raw in map(_raw, choice.message.tool_calls or []):
        try:
            tool_calls.append(parse_tool_call(raw, return_id=True))
        except OutputParserException as error:
            invalid.append(make_invalid_tool_call(raw, str(error)))
    metadata = {**route_metadata(decision, cost), "finish_reason": choice.finish_reason}
    return AIMessage(content=choice.message.content or "", tool_calls=tool_calls, invalid_tool_calls=invalid,
                     usage_metadata=usage_metadata(usage), response_metadata=metadata)


def to_chunk(chunk: Any) -> AIMessageChunk | None:
    """The AIMessageChunk of a LiteLLM stream chunk (None when it carries no text and no tool call)."""
    if not chunk.choices:
        return None
    delta = chunk.choices[0].delta
    calls = [tool_call_chunk(name=c.function.name, args=c.function.arguments, id=c.id, index=c.index)
             for c in delta.tool_calls or []]
    if not delta.content and not calls:
        return None
    return AIMessageChunk(content=delta.content or "", tool_call_chunks=calls)

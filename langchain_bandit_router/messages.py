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

__all__ = ["route_metadata", "to_chunk", "to_messages", "to_openai", "usage_metadata"]


def to_openai(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """OpenAI chat messages for LangChain `messages`; an AI message keeps its text and tool calls only."""
    converted = []
    for message in messages:
        item = convert_to_openai_messages(message)
        if isinstance(message, AIMessage):
            item["content"] = message.text
        converted.append(item)
    return converted


def usage_metadata(usage: dict[str, int], raw: Any = None) -> UsageMetadata:
    """LangChain's usage of the token counts `usage`, with the details (cache reads, reasoning and audio tokens) of
    the provider's usage object `raw` when it gives them, as ChatOpenAI reports them."""
    metadata = UsageMetadata(input_tokens=usage.get("prompt_tokens", 0),
                             output_tokens=usage.get("completion_tokens", 0),
                             total_tokens=usage.get("total_tokens", 0))
    for side, key, names in (("input_token_details", "prompt_tokens_details", {"cached_tokens": "cache_read",
                                                                                "audio_tokens": "audio"}),
                             ("output_token_details", "completion_tokens_details", {"reasoning_tokens": "reasoning",
                                                                                    "audio_tokens": "audio"})):
        found = getattr(raw, key, None)
        details = {ours: getattr(found, theirs) for theirs, ours in names.items() if getattr(found, theirs, None)}
        if details:
            metadata[side] = details  # type: ignore[literal-required]
    return metadata


def route_metadata(decision: Decision, cost: float | None = None) -> dict[str, Any]:
    """What `response_metadata` reports about the routing (the kit's route metadata with LangChain's
    `model_name` key): route_id, the model used, the dial, the propensity, the models that failed before it, the
    feedback_token (None unless the router signs), the task (None: none) and, when given, the cost in USD."""
    return kit_metadata(decision, cost, model_key="model_name")


def _raw(call: Any) -> dict[str, Any]:
    return call.model_dump() if hasattr(call, "model_dump") else dict(call)


def to_messages(response: Any, decision: Decision, cost: float, usage: dict[str, int]) -> list[AIMessage]:
    """The AIMessages of a LiteLLM chat-completion response, one per choice (`n` > 1 asks for several): text,
    tool calls, the provider's reasoning text (additional_kwargs["reasoning_content"]), the usage with its
    details, and the route with the response's id, system_fingerprint, finish_reason and logprobs."""
    common = {**route_metadata(decision, cost), "id": getattr(response, "id", None),
              "system_fingerprint": getattr(response, "system_fingerprint", None)}
    messages = []
    for choice in response.choices:
        tool_calls, invalid = [], []
        for raw in map(_raw, choice.message.tool_calls or []):
            try:
                tool_calls.append(parse_tool_call(raw, return_id=True))
            except OutputParserException as error:
                invalid.append(make_invalid_tool_call(raw, str(error)))
        metadata = {**common, "finish_reason": choice.finish_reason}
        if getattr(choice, "logprobs", None) is not None:
            metadata["logprobs"] = _raw(choice.logprobs)
        reasoning = getattr(choice.message, "reasoning_content", None)
        messages.append(AIMessage(
            content=choice.message.content or "", tool_calls=tool_calls, invalid_tool_calls=invalid,
            additional_kwargs={"reasoning_content": reasoning} if reasoning else {},
            usage_metadata=usage_metadata(usage, getattr(response, "usage", None)), response_metadata=metadata))
    return messages


def to_chunk(chunk: Any) -> AIMessageChunk | None:
    """The AIMessageChunk of a LiteLLM stream chunk's first choice (None when it carries no text, reasoning text or
    tool call)."""
    if not chunk.choices:
        return None
    delta = chunk.choices[0].delta
    calls = [tool_call_chunk(name=c.function.name, args=c.function.arguments, id=c.id, index=c.index)
             for c in delta.tool_calls or []]
    reasoning = getattr(delta, "reasoning_content", None)
    if not delta.content and not calls and not reasoning:
        return None
    return AIMessageChunk(content=delta.content or "", tool_call_chunks=calls,
                          additional_kwargs={"reasoning_content": reasoning} if reasoning else {})

"""What LangChain users hit (issue #17): early-stopped streams rated, structured output by JSON modes, error text,
strict tools, token usage, vision eligibility, refused arguments, copies, the LLM cache, token counts."""

from __future__ import annotations

import copy
import uuid

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.messages import HumanMessage
from langchain_core.exceptions import OutputParserException
from pydantic import BaseModel, ValidationError

from bandit_router import AllModelsFailedError, ConfigError, Model, NoEligibleModelError, Router, UnknownRouteError
from bandit_router.testing import FakeLLMServer
from langchain_bandit_router import ChatBanditRouter, FeedbackHandler

from .conftest import LARGE, SMALL, cards, hashed_bow


class Answer(BaseModel):
    value: int
    unit: str


def test_a_stream_stopped_early_can_be_rated(llm: ChatBanditRouter, router: Router) -> None:
    ratings, run_id = FeedbackHandler(router), uuid.uuid4()
    for chunk in llm.stream("tell me a long story", config={"callbacks": [ratings], "run_id": run_id}):
        break
    route_id = chunk.response_metadata["route_id"]
    assert router.pending(route_id)
    assert ratings.feedback(run_id, 0.0) == [route_id]
    assert not router.pending(route_id)


async def test_an_async_stream_stopped_early_can_be_rated(llm: ChatBanditRouter, router: Router) -> None:
    ratings, run_id = FeedbackHandler(router), uuid.uuid4()
    async for chunk in llm.astream("tell me a story", config={"callbacks": [ratings], "run_id": run_id}):
        break
    assert ratings.feedback(run_id, 0.0) == [chunk.response_metadata["route_id"]]


@pytest.mark.parametrize("method, kind", [("json_schema", "json_schema"), ("json_mode", "json_object")])
def test_structured_output_json_methods_send_response_format(server: FakeLLMServer, method: str, kind: str) -> None:
    router = Router(cards(server.base_url, tools=(False, False)), encoder=hashed_bow, seed=0)  # no tool support
    for name in ("small", "large"):
        server.set_behavior(name, respond=lambda messages: '{"value": 5, "unit": "kg"}')
    structured = ChatBanditRouter(router=router).with_structured_output(Answer, method=method)
    assert structured.invoke("Give me 5 'kg' as JSON with keys value and unit") == Answer(value=5, unit="kg")
    params = server.requests[-1].params
    assert params["response_format"]["type"] == kind and "tools" not in params
    if method == "json_schema":
        assert params["response_format"]["json_schema"]["schema"]["required"] == ["value", "unit"]


def test_structured_output_without_tool_models_defaults_to_json_schema(server: FakeLLMServer) -> None:
    router = Router(cards(server.base_url, tools=(False, False)), encoder=hashed_bow, seed=0)
    result = ChatBanditRouter(router=router).with_structured_output(Answer, include_raw=True).invoke("Give me 3 'm'")
    assert result["parsed"].value == 3 and result["raw"].response_metadata["route_id"]
    assert server.requests[-1].params["response_format"]["type"] == "json_schema"


def test_all_models_failed_names_the_real_cause(server: FakeLLMServer, tmp_path) -> None:
    router = Router(cards(server.base_url), encoder=hashed_bow, seed=0)
    router.save(tmp_path / "router.safetensors")
    loaded = Router.load(tmp_path / "router.safetensors", encoder=hashed_bow,  # no api_keys: no credentials
                         api_bases={name: server.base_url for name in router.models})
    with pytest.raises(AllModelsFailedError) as caught:
        ChatBanditRouter(router=loaded).invoke("hi")
    assert "api_key" in str(caught.value) or "credentials" in str(caught.value).lower()


def test_all_models_failed_message_redacts_api_keys(server: FakeLLMServer) -> None:
    secret = "sk-very-secret-key-0123456789"
    router = Router([Model(SMALL, input_cost_per_token=1e-7, output_cost_per_token=1e-7, api_base=server.base_url,
                           api_key=secret, params={"max_retries": 0})], encoder=hashed_bow, seed=0)
    server.set_behavior("small", fail_status=500)
    with pytest.raises(AllModelsFailedError) as caught:
        router.complete(f"my key is {secret}")
    assert "InternalServerError" in str(caught.value) and "server had an error" in str(caught.value)
    assert secret not in str(caught.value)


def test_strict_tools_are_strict_per_function(llm: ChatBanditRouter, server: FakeLLMServer) -> None:
    def square(x: int) -> int:
        """Square a number."""
        return x * x

    llm.bind_tools([square], strict=True).invoke("square 3")
    params = server.requests[-1].params
    assert "strict" not in params and params["tools"][0]["function"]["strict"] is True


def test_llm_output_has_token_usage(llm: ChatBanditRouter) -> None:
    result = llm.generate([[HumanMessage("count these words")]])
    assert result.llm_output["token_usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def test_images_go_only_to_vision_models(server: FakeLLMServer) -> None:
    small, large = cards(server.base_url)
    router = Router([small, Model(**{**large.to_config(), "supports_vision": True}, api_key="sk-test")],
                    encoder=hashed_bow, seed=0)
    llm = ChatBanditRouter(router=router)
    image = HumanMessage(content=[{"type": "text", "text": "what is this?"},
                                  {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}])
    assert {llm.invoke([image]).response_metadata["model_name"] for _ in range(6)} == {LARGE}
    with pytest.raises(NoEligibleModelError, match="image"):
        llm.invoke([image], models=[SMALL])


@pytest.mark.parametrize("kwargs, field", [({"temprature": 0.1}, "temperature"), ({"max_tokens": -1}, "max_tokens"),
                                           ({"temperature": 3}, r"temperature must be a number in \[0, 2\]"),
                                           ({"top_p": "all"}, "top_p"), ({"n": 1.5}, "n must be an integer"),
                                           ({"logprobs": "yes"}, "logprobs must be true or false"),
                                           ({"tools": "search"}, "tools must be a list")])
def test_misspelt_or_invalid_kwargs_are_refused(llm: ChatBanditRouter, server: FakeLLMServer, kwargs: dict,
                                                 field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        llm.invoke("hi", **kwargs)
    assert server.requests == []


def test_model_copy_validates_and_deepcopy_shares_the_router(llm: ChatBanditRouter) -> None:
    with pytest.raises(ValidationError, match="cost_weight"):
        llm.model_copy(update={"cost_weight": 7})
    assert llm.model_copy(update={"cost_weight": 0.5}).cost_weight == 0.5
    clone = copy.deepcopy(llm)
    assert clone.router is llm.router and clone.invoke("hi").content == "Echo: hi"


def test_cached_replies_are_reported_as_cached(router: Router, server: FakeLLMServer) -> None:
    llm = ChatBanditRouter(router=router, cache=InMemoryCache())
    first = llm.invoke("cache me")
    ratings, run_id = FeedbackHandler(router), uuid.uuid4()
    again = llm.invoke("cache me", config={"callbacks": [ratings], "run_id": run_id})
    assert len(server.requests) == 1 and again.content == first.content
    assert again.response_metadata["cached"] is True and again.response_metadata["cost"] == 0.0
    assert again.response_metadata["route_id"] is None
    router.feedback(first.response_metadata["route_id"], 1.0)  # the original decision is still rated once
    with pytest.raises(UnknownRouteError, match="served from a cache"):
        router.feedback(again.response_metadata["route_id"], 1.0)
    with pytest.raises(UnknownRouteError, match="its replies came from a cache"):
        ratings.feedback(run_id, 1.0)


def test_the_cache_keeps_apart_instances_with_other_call_settings(router: Router, server: FakeLLMServer) -> None:
    """As ChatOpenAI's: a reply cut at max_tokens=1 is not served to an instance that allows 1000, nor a plain reply
    to one asking for JSON; credentials stay out of the key (a cache may be a file)."""
    cache = InMemoryCache()
    ChatBanditRouter(router, max_tokens=1, cache=cache).invoke("cache me")
    for other in ({"max_tokens": 1000}, {"temperature": 1.0}, {"stop": ["x"]}, {"timeout": 9.0},
                  {"model_kwargs": {"response_format": {"type": "json_object"}}}):
        reply = ChatBanditRouter(router, cache=cache, **{"max_tokens": 1, **other}).invoke("cache me")
        assert reply.response_metadata.get("cached") is None, other
    again = ChatBanditRouter(router, max_tokens=1, cache=cache).invoke("cache me", budget_key="user-1")
    assert again.response_metadata["cached"] is True and len(server.requests) == 6  # whoever would have paid
    llm = ChatBanditRouter(router, model_kwargs={"extra_headers": {"Authorization": "Bearer sk-secret-1"}})
    assert "sk-secret" not in llm._get_llm_string(extra_headers={"X-Api-Key": "sk-secret-2"})


def test_get_num_tokens_counts(llm: ChatBanditRouter) -> None:
    assert llm.get_num_tokens("hello world how are you") == 5
    assert llm.get_num_tokens_from_messages([HumanMessage("hello world how are you")]) > 5


def test_what_the_provider_returns_beyond_the_text_is_kept(llm: ChatBanditRouter) -> None:
    """As ChatOpenAI keeps it: every choice of `n`, reasoning text, logprobs, the response id and fingerprint, and
    the usage's cache-read and reasoning tokens."""
    from litellm import ModelResponse

    reply = ModelResponse(id="chatcmpl-7", system_fingerprint="fp_1", choices=[
        {"index": 0, "finish_reason": "stop", "logprobs": {"content": [{"token": "42", "logprob": -0.1, "bytes": None,
                                                                      "top_logprobs": []}]},
         "message": {"role": "assistant", "content": "42", "reasoning_content": "6 x 7"}},
        {"index": 1, "finish_reason": "length", "message": {"role": "assistant", "content": "41"}}],
        usage={"prompt_tokens": 20, "completion_tokens": 30, "total_tokens": 50,
               "prompt_tokens_details": {"cached_tokens": 8}, "completion_tokens_details": {"reasoning_tokens": 15}})
    [generations] = llm.generate([[HumanMessage("6 x 7?")]], n=2, mock_response=reply).generations
    first, second = (g.message for g in generations)
    assert (first.content, second.content) == ("42", "41")
    assert first.additional_kwargs == {"reasoning_content": "6 x 7"} and second.additional_kwargs == {}
    assert first.usage_metadata == {"input_tokens": 20, "output_tokens": 30, "total_tokens": 50,
                                    "input_token_details": {"cache_read": 8}, "output_token_details": {"reasoning": 15}}
    meta = first.response_metadata
    assert (meta["id"], meta["system_fingerprint"], meta["finish_reason"]) == ("chatcmpl-7", "fp_1", "stop")
    assert meta["logprobs"]["content"][0]["token"] == "42" and "logprobs" not in second.response_metadata
    assert second.response_metadata["route_id"] == meta["route_id"]  # one routed call, one rating


def test_a_pydantic_response_format_is_parsed_as_chatopenai_parses_it(router: Router, server: FakeLLMServer) -> None:
    class Person(BaseModel):
        name: str

    server.set_behavior("small", respond=lambda messages: '{"name": "Ann"}')
    server.set_behavior("large", respond=lambda messages: '{"name": "Ann"}')
    reply = ChatBanditRouter(router).invoke("who?", response_format=Person)
    assert reply.additional_kwargs["parsed"] == Person(name="Ann")
    assert server.requests[-1].params["response_format"]["type"] == "json_schema"
    server.set_behavior("small", respond=lambda messages: '{"age": 3}')  # JSON, not a Person
    server.set_behavior("large", respond=lambda messages: '{"age": 3}')
    with pytest.raises(OutputParserException, match="does not fit response_format Person"):
        ChatBanditRouter(router).invoke("who?", response_format=Person)

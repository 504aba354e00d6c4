"""What LlamaIndex users hit (issue #17): streamed structured output, fast fallback, routing info on the message,
evaluator feedback on streams and unparsable judges, a dial per engine, and a clear error for huge prompts."""

from __future__ import annotations

import copy

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.evaluation import CorrectnessEvaluator
from llama_index.core.prompts import PromptTemplate
from pydantic import BaseModel

from bandit_router import ConfigError, Model, NoEligibleModelError, Router
from bandit_router.encoders import as_encoder
from bandit_router.feedback import EvaluationError
from bandit_router.testing import FakeLLMServer
from llamaindex_bandit_router import BanditRouterLLM, EncoderEmbedding, EvaluatorFeedback

from .conftest import BIG, CHEAP, bag_of_words


class Pet(BaseModel):
    name: str
    age: int


PROMPT = PromptTemplate("Describe a pet named 'Rex' aged 3: {text}")


def test_stream_structured_predict_fills_every_field(llm: BanditRouterLLM) -> None:
    last = None
    for last in llm.stream_structured_predict(Pet, PROMPT, text="go"):
        pass
    assert last == Pet(name="Rex", age=3)


async def test_astream_structured_predict_fills_every_field(llm: BanditRouterLLM) -> None:
    last = None
    async for last in await llm.astream_structured_predict(Pet, PROMPT, text="go"):
        pass
    assert last == Pet(name="Rex", age=3)


def test_structured_llm_stream_chat_fills_every_field(llm: BanditRouterLLM) -> None:
    responses = list(llm.as_structured_llm(Pet).stream_chat([ChatMessage(role="user", content="A pet 'Rex' aged 3")]))
    assert responses[-1].raw == Pet(name="Rex", age=3)


def test_tool_calls_are_sent_back_once(llm: BanditRouterLLM, server: FakeLLMServer) -> None:
    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        return a * b

    from llama_index.core.tools import FunctionTool

    response = llm.chat_with_tools([FunctionTool.from_defaults(multiply)], user_msg="6 times 7?")
    llm.chat([ChatMessage(role="user", content="6 times 7?"), response.message])
    assert len(server.requests[-1].messages[-1]["tool_calls"]) == 1


def test_a_failing_model_is_not_retried_before_falling_back(router: Router, server: FakeLLMServer) -> None:
    llm = BanditRouterLLM(router, models=[CHEAP, BIG])  # default call settings: no retries of the same model
    server.set_behavior("cheap", fail_status=500)
    server.set_behavior("big", fail_status=500)
    with pytest.raises(Exception, match="server had an error"):
        llm.complete("hello")
    assert sorted(r.model for r in server.requests) == ["big", "cheap"]  # one request each, no client retries


def test_a_404_from_one_model_falls_back_to_a_healthy_one(router: Router, server: FakeLLMServer) -> None:
    gone = Model("openai/gone", input_cost_per_token=1e-9, output_cost_per_token=1e-9, api_base=server.base_url,
                 api_key="sk-test")
    router.add_model(gone)
    llm = BanditRouterLLM(router)
    answered = {llm.complete(f"question {i}").additional_kwargs["model"] for i in range(8)}
    assert "openai/gone" not in answered and router.failures.get("openai/gone", 0) >= 1


async def test_agent_output_carries_its_route(llm: BanditRouterLLM) -> None:
    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        return a * b

    for streaming in (True, False):
        result = await FunctionAgent(tools=[multiply], llm=llm, streaming=streaming).run("What is 6 times 6?")
        route_id = result.response.additional_kwargs["route_id"]
        assert llm.router.pending(route_id) and result.response.additional_kwargs["model"] in (CHEAP, BIG)
        llm.feedback(route_id, 1.0)


def _index(router: Router) -> VectorStoreIndex:
    docs = [Document(text="The library opens at 10 am on Saturdays."), Document(text="Cats sleep a lot.")]
    return VectorStoreIndex.from_documents(docs, embed_model=EncoderEmbedding(as_encoder(bag_of_words)))


def test_a_stream_is_recorded_when_it_starts(llm: BanditRouterLLM, router: Router) -> None:
    with llm.record_routes() as routes:
        stream = llm.stream_complete("tell me more")
    assert routes == []  # routed at its first read, as LlamaIndex's own LLMs send their request then
    next(stream)
    assert len(routes) == 1 and router.pending(routes[0]["route_id"]) and "cost" not in routes[0]
    assert [r.text for r in stream][-1] == "Echo: tell me more"
    assert routes[0]["cost"] > 0  # completed in place when the stream ended


def test_a_streaming_query_engine_calls_the_llm_when_read(llm: BanditRouterLLM, router: Router) -> None:
    """LlamaIndex's streaming synthesizer is lazy: its LLM call happens as the stream is read (the README says to
    read it inside the block)."""
    engine = _index(router).as_query_engine(llm=llm, streaming=True)
    with llm.record_routes() as routes:
        response = engine.query("When does the library open?")
        assert routes == []
        text = "".join(response.response_gen)
    assert text and len(routes) == 1 and routes[0]["cost"] > 0


def test_evaluator_feedback_grades_a_streaming_response(llm: BanditRouterLLM, router: Router,
                                                        server: FakeLLMServer) -> None:
    server.set_behavior("big", respond=lambda messages: "4.0\nGood.")
    grader = BanditRouterLLM(Router([Model(BIG, input_cost_per_token=0, output_cost_per_token=0,
                                           api_base=server.base_url, api_key="sk-test")], encoder=bag_of_words))
    engine = _index(router).as_query_engine(llm=llm.with_options(models=[CHEAP]), streaming=True)
    grades = EvaluatorFeedback(llm, CorrectnessEvaluator(llm=grader))
    with llm.record_routes() as routes:
        response = engine.query("When does the library open?")
        assert grades.evaluate(routes, "When does the library open?", response, reference="10 am") == 0.75
    assert not router.pending(routes[0]["route_id"])


def test_an_unparsable_judge_reply_is_a_typed_error_naming_the_route(llm: BanditRouterLLM,
                                                                    server: FakeLLMServer) -> None:
    server.set_behavior("big", respond=lambda messages: "I would rather not say.")
    grader = BanditRouterLLM(Router([Model(BIG, input_cost_per_token=0, output_cost_per_token=0,
                                           api_base=server.base_url, api_key="sk-test")], encoder=bag_of_words))
    response = llm.complete("capital of France?", models=[CHEAP])
    route_id = response.additional_kwargs["route_id"]
    with pytest.raises(EvaluationError, match=route_id):
        EvaluatorFeedback(llm, CorrectnessEvaluator(llm=grader)).evaluate(
            [response.additional_kwargs], "capital of France?", response.text, reference="Paris")
    assert llm.router.pending(route_id)


def test_a_query_engine_with_its_own_dial(llm: BanditRouterLLM, router: Router) -> None:
    thrifty = llm.with_options(cost_weight=1.0)
    engine = _index(router).as_query_engine(llm=thrifty)
    with llm.record_routes() as routes:  # the sibling's calls reach the parent's blocks
        engine.query("When does the library open?")
    assert [r["cost_weight"] for r in routes] == [1.0] and thrifty.router is router and llm.cost_weight is None
    with pytest.raises(ConfigError, match="cost_weight"):
        llm.with_options(cost_weight=7)
    with pytest.raises(ConfigError, match="with_options"):
        llm.with_options(temprature=0.1)


def test_misspelt_call_kwargs_are_refused(llm: BanditRouterLLM, server: FakeLLMServer) -> None:
    with pytest.raises(ConfigError, match="temperature"):
        llm.complete("hi", temprature=0.1)
    with pytest.raises(ConfigError, match="max_tokens"):
        llm.complete("hi", max_tokens=-1)
    assert server.requests == []


def test_a_huge_prompt_names_the_context_windows(llm: BanditRouterLLM, server: FakeLLMServer) -> None:
    with pytest.raises(NoEligibleModelError, match="8192") as caught:
        llm.complete("word " * 400_000)  # 2 MB
    assert "128000" in str(caught.value) and server.requests == []


def test_a_query_engine_works_over_models_whose_answer_limit_is_their_window(server: FakeLLMServer) -> None:
    """LiteLLM's cards often give max_output_tokens = context window: kept as the answer's room, it left no room
    for the prompt ("Calculated available context size -90")."""
    router = Router([Model(CHEAP, input_cost_per_token=1e-7, output_cost_per_token=2e-7, context_window=8_192,
                           max_output_tokens=8_192, api_base=server.base_url, api_key="sk-test")],
                    encoder=bag_of_words, seed=0)
    llm = BanditRouterLLM(router, call_kwargs={"max_retries": 0})
    index = VectorStoreIndex.from_documents([Document(text="The shop opens at 10 am.")],
                                            embed_model=EncoderEmbedding(as_encoder(bag_of_words)))
    assert "10 am" in str(index.as_query_engine(llm=llm).query("When does the shop open?"))


def test_an_image_goes_to_a_vision_model_as_an_image_part(server: FakeLLMServer) -> None:
    from llama_index.core.base.llms.types import ImageBlock, TextBlock

    seeing = Model("openai/big", input_cost_per_token=1e-5, output_cost_per_token=3e-5, supports_vision=True,
                   api_base=server.base_url, api_key="sk-test")
    blind = Model("openai/cheap", input_cost_per_token=1e-7, output_cost_per_token=2e-7, supports_vision=False,
                  api_base=server.base_url, api_key="sk-test")
    llm = BanditRouterLLM(Router([blind, seeing], encoder=bag_of_words, seed=0), cost_weight=1.0)
    message = ChatMessage(role="user", blocks=[TextBlock(text="What is this?"), ImageBlock(url="http://x/y.png"),
                                               ImageBlock(image=b"\x89PNG", image_mimetype="image/png")])
    assert llm.chat([message]).additional_kwargs["model"] == "openai/big"  # the cheap one cannot see
    text, url, data = server.requests[-1].messages[-1]["content"]
    assert text == {"type": "text", "text": "What is this?"} and url["image_url"]["url"] == "http://x/y.png"
    assert data["image_url"]["url"] == "data:image/png;base64,iVBORw=="


def test_bad_prompts_settings_and_copies_are_named_at_once(llm: BanditRouterLLM, server: FakeLLMServer) -> None:
    import copy
    import pickle

    from bandit_router import InvalidPromptError

    for prompt in (None, 42):
        with pytest.raises(InvalidPromptError, match=f"prompt must be a str, got {type(prompt).__name__}"):
            llm.complete(prompt)
    with pytest.raises(ConfigError, match="response_format must be"):  # LiteLLM would fail it model by model
        llm.complete("hi", response_format="json")
    assert server.requests == [] and llm.router.failures == {CHEAP: 0, BIG: 0}
    with pytest.raises(ConfigError, match=r"cost_weight must be a number in \[0, 1\]"):
        llm.cost_weight = 7
    with pytest.raises(ConfigError, match="cost_weight"):
        llm.model_copy(update={"cost_weight": 5})
    with pytest.raises(ConfigError, match="models contains unknown names"):
        llm.models = ["openai/nope"]
    sibling = copy.deepcopy(llm.model_copy(update={"cost_weight": 0.5}))
    assert sibling.router is llm.router and sibling.cost_weight == 0.5 and llm.cost_weight is None
    with pytest.raises(TypeError, match="cannot be pickled: save the router with router.save"):
        pickle.dumps(llm)


def test_a_dropped_parallel_tool_call_leaves_no_trace(llm: BanditRouterLLM) -> None:
    from llama_index.core.base.llms.types import ChatResponse

    from llamaindex_bandit_router.messages import _assistant

    both = ChatResponse(message=_assistant("", [("c1", "add", "{}"), ("c2", "mul", "{}")], {}))
    one = llm._validate_chat_with_tools_response(both, [], allow_parallel_tool_calls=False).message
    assert [b.tool_call_id for b in one.blocks] == ["c1"]
    assert [c["id"] for c in one.additional_kwargs["tool_calls"]] == ["c1"]


def test_openai_style_constructor_arguments_are_call_kwargs(router: Router, server: FakeLLMServer) -> None:
    """As llama_index's OpenAI(temperature=0, max_tokens=50): sent with every call (they were silently dropped);
    a misspelt one is refused."""
    llm = BanditRouterLLM(router, temperature=0.0, max_tokens=50)
    assert llm.call_kwargs == {"temperature": 0.0, "max_tokens": 50} and llm.metadata.num_output == 50
    llm.complete("hi")
    assert {k: server.requests[-1].params.get(k) for k in ("temperature", "max_tokens")} == {
        "temperature": 0.0, "max_tokens": 50}
    with pytest.raises(ConfigError, match="temprature"):
        BanditRouterLLM(router, temprature=1.0)


def test_siblings_and_copies_keep_llamaindex_settings(router: Router, server: FakeLLMServer) -> None:
    llm = BanditRouterLLM(router, system_prompt="Answer in French.", pydantic_program_mode="llm")
    for sibling in (llm.with_options(cost_weight=1.0), copy.deepcopy(llm)):
        assert (sibling.system_prompt, sibling.pydantic_program_mode) == ("Answer in French.", "llm")
        assert sibling.router is router and sibling._recorder is llm._recorder
        sibling.predict(PromptTemplate("Say hi"))  # LlamaIndex adds the system prompt
        assert server.requests[-1].messages[0] == {"role": "system", "content": "Answer in French."}
    with pytest.raises(ConfigError, match="max_retries"):
        llm.with_options(max_retries=-1)


def test_from_dict_needs_the_router_and_the_masked_credentials(router: Router) -> None:
    llm = BanditRouterLLM(router, cost_weight=0.3, call_kwargs={"extra_headers": {"Authorization": "Bearer sk-1"}})
    data = llm.to_dict()
    with pytest.raises(ConfigError, match="from_dict needs router="):
        BanditRouterLLM.from_dict(data)
    with pytest.raises(ConfigError, match=r"call_kwargs \['extra_headers'\] hold '\[REDACTED\]'"):
        BanditRouterLLM.from_dict(data, router=router)
    again = BanditRouterLLM.from_dict(data, router=router, call_kwargs=llm.call_kwargs)
    assert again.cost_weight == 0.3 and again.call_kwargs == llm.call_kwargs


def test_two_llms_over_one_router_record_into_the_same_blocks(router: Router) -> None:
    """A query engine's answers and its condense step may be served by two LLMs built apart over one router: one
    record_routes() block sees both (the second's calls went unrecorded, and unrated)."""
    answers, condense = BanditRouterLLM(router), BanditRouterLLM(router, cost_weight=1.0)
    with answers.record_routes() as routes:
        condense.complete("condense this")
        answers.complete("answer this")
    assert len(routes) == 2

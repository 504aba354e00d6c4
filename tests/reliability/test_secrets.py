"""A canary API key, feedback secret and prompt never show up in logs, files, exceptions or reprs."""

from __future__ import annotations

import asyncio
import json
import io
import logging
import traceback
from pathlib import Path
from typing import Iterator

import pytest

from bandit_router import FeedbackSettings, Limits, LogSettings, Model, Router
from bandit_router.errors import BanditRouterError, StoreUnavailableError
from bandit_router.store import RedisStateStore, SQLiteStateStore
from bandit_router.testing import FakeLLMServer, ModelBehavior

from .conftest import free_port
from .workers import fake_encoder

KEY = "sk-canary-KEY-7f3a9c2e51d84b06"
SECRET = "canary-SECRET-e1b2c3d4e5f60718"
PROMPT = "canary PROMPT zebra-quartz-4471: what is the capital of Mongolia?"
ARGUMENTS = '{"query": "canary ARGUMENTS walrus-9931"}'  # an earlier tool call's arguments, part of the prompt
LOGGERS = ["", "LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "openai", "httpx", "httpcore", "bandit_router"]


@pytest.fixture
def debug_logs() -> Iterator[io.StringIO]:
    """Every log record at DEBUG, LiteLLM's included, written to one buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    saved = {name: logging.getLogger(name).level for name in LOGGERS}
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    try:
        yield buffer
    finally:
        logging.getLogger().removeHandler(handler)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def full_run(folder: Path, store_prompts: bool) -> list[str]:
    """Route, call (with a fallback, a failure, a stream, an async call), rate, sync, save and load; return
    the text of every exception and repr seen on the way."""
    seen: list[str] = []

    def keep(error: BaseException) -> None:
        seen.extend([str(error), repr(error), "".join(traceback.format_exception(error))])
        for inner in getattr(error, "failures", {}).values():
            keep(inner)

    behaviors = {"good": ModelBehavior(respond=lambda messages: "Ulaanbaatar."),
                 "flaky": ModelBehavior(fail_status=500), "locked": ModelBehavior(fail_status=401)}
    with FakeLLMServer(behaviors) as server:
        cards = [Model(f"openai/{name}", input_cost_per_token=1e-6, output_cost_per_token=2e-6, context_window=8192,
                       max_output_tokens=1024, supports_tools=False, api_base=server.base_url, api_key=KEY)
                 for name in behaviors]
        router = Router(cards, encoder=fake_encoder, seed=0,
                        log=LogSettings(folder / "decisions.db", store_prompts=store_prompts, store_vectors=True),
                        state_store=SQLiteStateStore(folder / "state.db"),
                        feedback=FeedbackSettings(feedback_secret=SECRET),
                        limits=Limits(max_prompt_chars=1000, sync_every=0))
        completion = router.complete(PROMPT, models=["openai/flaky", "openai/good"], num_retries=0)
        router.feedback(completion.decision.route_id, 1.0, token=completion.decision.feedback_token)
        earlier = [{"role": "assistant", "content": None, "tool_calls": [
                       {"id": "c1", "type": "function", "function": {"name": "look_up", "arguments": ARGUMENTS}}]},
                   {"role": "tool", "tool_call_id": "c1", "content": "no result"}]
        stream = router.stream([{"role": "system", "content": "Be brief."}, *earlier,
                                {"role": "user", "content": PROMPT}], models=["openai/good"], num_retries=0)
        assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices) == "Ulaanbaatar."
        asynchronous = asyncio.run(router.acomplete(PROMPT, models=["openai/good"], num_retries=0))
        seen += [repr(router), repr(router.models), repr(completion.decision), repr(asynchronous.decision),
                 repr(router.tokens), repr(router.replica.store), str(router.__dict__)]
        for call in (lambda: router.complete(PROMPT, models=["openai/locked"], num_retries=0),
                     lambda: router.complete(PROMPT, models=["openai/flaky"], num_retries=0),
                     lambda: router.route(PROMPT * 20),
                     lambda: router.feedback(asynchronous.decision.route_id, 1.0, token="1.forged")):
            with pytest.raises(Exception) as caught:
                call()
            keep(caught.value)
        router.sync()
        router.save(folder / "router.safetensors")
        loaded = Router.load(folder / "router.safetensors", encoder=fake_encoder,
                             api_keys={card.name: KEY for card in cards},
                             api_bases={card.name: server.base_url for card in cards})
        seen += [repr(loaded), repr(loaded.models), str(loaded.__dict__)]
    return seen


def files_text(folder: Path) -> str:
    """Every file the run wrote (state file, SQLite files with their WAL), as text."""
    return "\n".join(p.read_bytes().decode("latin-1") for p in folder.rglob("*") if p.is_file())


def test_canary_key_and_prompt_never_leak(tmp_path: Path, debug_logs: io.StringIO) -> None:
    seen = full_run(tmp_path, store_prompts=False)
    logs, files = debug_logs.getvalue(), files_text(tmp_path)
    assert "LiteLLM" in logs and "[REDACTED]" in logs  # LiteLLM's DEBUG records were captured, and redacted
    for canary in (KEY, SECRET, PROMPT, "walrus-9931"):
        assert canary not in logs
        assert canary not in files
        assert not [text for text in seen if canary in text]


def test_stored_prompts_appear_only_where_enabled(tmp_path: Path, debug_logs: io.StringIO) -> None:
    seen = full_run(tmp_path, store_prompts=True)
    assert PROMPT in (tmp_path / "decisions.db").read_bytes().decode("latin-1") + files_text(tmp_path)
    assert PROMPT in debug_logs.getvalue()  # with storage on, LiteLLM's request logs are left as they are
    for canary in (KEY, SECRET):
        assert canary not in debug_logs.getvalue() and canary not in files_text(tmp_path)
        assert not [text for text in seen if canary in text]


def test_redis_password_never_shown() -> None:
    store = RedisStateStore(f"redis://:{SECRET}@127.0.0.1:{free_port()}/0", timeout=0.2)
    with pytest.raises(StoreUnavailableError) as caught:
        store.totals()
    texts = [repr(store), str(caught.value), "".join(traceback.format_exception(caught.value))]
    assert not [text for text in texts if SECRET in text]
    assert isinstance(caught.value, BanditRouterError)


def test_redaction_covers_messages_arguments_and_tracebacks(debug_logs: io.StringIO) -> None:
    from bandit_router.redaction import hidden, hide

    hide([KEY])
    log = logging.getLogger("bandit_router.reliability-test")  # any logger: the record factory is global
    with hidden([PROMPT]):
        log.debug("request %s", {"messages": [{"content": PROMPT}], "api_key": KEY})
        log.debug(f"curl -d '{json.dumps({'content': PROMPT + chr(10)})}'")
        try:
            raise ValueError(f"bad key {KEY} for {PROMPT!r}")
        except ValueError:
            log.exception("call failed")
    log.debug("after the call: %s", PROMPT)  # the prompt is hidden only while its call runs
    logs = debug_logs.getvalue()
    assert logs.count("[REDACTED]") >= 5 and KEY not in logs
    assert logs.count(PROMPT) == 1 and f"after the call: {PROMPT}" in logs


# -- credentials in every place a Model accepts them (issue #21) -----------------------------------------------------
HEADER_TOKEN = "hdr-canary-Bearer-5b1e0c77d2"
HEADER_KEY = "hdr-canary-xapikey-93ad4f21"
AWS_SECRET = "aws-canary-secret-40c2d9e815"
VERTEX_KEY = "vtx-canary-private-key-6e7f"
URL_PASSWORD = "url-canary-password-a81c3d"
CREDENTIAL_CANARIES = [KEY, HEADER_TOKEN, HEADER_KEY, AWS_SECRET, VERTEX_KEY, URL_PASSWORD]


def test_credential_canaries_never_leak(tmp_path: Path, debug_logs: io.StringIO, monkeypatch) -> None:
    import litellm

    seen: list[str] = []
    sent: list[dict] = []
    real = litellm.completion

    def spy(**kwargs):  # what reached LiteLLM: the credentials must be used for the call
        sent.append({k: kwargs.get(k) for k in ("api_key", "extra_headers", "aws_secret_access_key")})
        return real(**kwargs)

    monkeypatch.setattr(litellm, "completion", spy)

    def keep(error: BaseException) -> None:
        seen.extend([str(error), repr(error), "".join(traceback.format_exception(error))])
        for inner in getattr(error, "failures", {}).values():
            keep(inner)

    credentials = {"extra_headers": {"Authorization": f"Bearer {HEADER_TOKEN}", "x-api-key": HEADER_KEY},
                   "aws_secret_access_key": AWS_SECRET,
                   "vertex_credentials": json.dumps({"type": "service_account", "private_key": VERTEX_KEY})}
    behaviors = {"good": ModelBehavior(respond=lambda messages: "Ulaanbaatar."), "locked": ModelBehavior(fail_status=401)}
    with FakeLLMServer(behaviors) as server:
        with pytest.raises(Exception) as caught:  # credentials in the URL: refused, and not echoed
            Model("openai/good", input_cost_per_token=1e-6, output_cost_per_token=2e-6,
                  api_base=server.base_url.replace("://", f"://user:{URL_PASSWORD}@"))
        keep(caught.value)
        cards = [Model(f"openai/{name}", input_cost_per_token=1e-6, output_cost_per_token=2e-6, context_window=8192,
                       max_output_tokens=1024, supports_tools=False, api_base=server.base_url, api_key=KEY,
                       params={"temperature": 0.0, **credentials}) for name in behaviors]
        router = Router(cards, encoder=fake_encoder, seed=0, log=tmp_path / "decisions.db",
                        state_store=SQLiteStateStore(tmp_path / "state.db"),
                        limits=Limits(sync_every=0), feedback=FeedbackSettings(feedback_secret=SECRET))
        completion = router.complete(PROMPT, models=["openai/good"], num_retries=0)
        router.feedback(completion.decision.route_id, 1.0, token=completion.decision.feedback_token)
        stream = router.stream(PROMPT, models=["openai/good"], num_retries=0)
        assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices) == "Ulaanbaatar."
        asynchronous = asyncio.run(router.acomplete(PROMPT, models=["openai/good"], num_retries=0))
        with pytest.raises(Exception) as caught:
            router.complete(PROMPT, models=["openai/locked"], num_retries=0)
        keep(caught.value)
        seen += [repr(router), repr(router.models), str(router.models), repr(completion.decision),
                 repr(asynchronous.decision), str(router.__dict__), str([m.to_config() for m in cards])]
        router.save(tmp_path / "router.safetensors")
        loaded = Router.load(tmp_path / "router.safetensors", encoder=fake_encoder,
                             api_keys={card.name: KEY for card in cards},
                             credentials={card.name: credentials for card in cards},
                             api_bases={card.name: server.base_url for card in cards})
        again = loaded.complete(PROMPT, models=["openai/good"], num_retries=0)
        assert again.text == "Ulaanbaatar."
        seen += [repr(loaded), repr(loaded.models), str(loaded.__dict__)]
    assert len(sent) >= 4 and all(s["api_key"] == KEY and s["aws_secret_access_key"] == AWS_SECRET
                                  and s["extra_headers"]["Authorization"] == f"Bearer {HEADER_TOKEN}" for s in sent)
    logs, files = debug_logs.getvalue(), files_text(tmp_path)
    assert "LiteLLM" in logs and "[REDACTED]" in logs
    leaks = [(canary, where) for canary in CREDENTIAL_CANARIES for where, text in
             [("logs", logs), ("files", files)] + [(f"seen[{i}]", t) for i, t in enumerate(seen)] if canary in text]
    assert leaks == []


def test_credentials_given_per_call_or_per_wrapper_never_leak(debug_logs: io.StringIO) -> None:
    """An Authorization header in a call's extra_headers (or a wrapper's model_kwargs / call_kwargs) is redacted
    from LiteLLM's DEBUG records and kept out of reprs, LangChain's dumps (what tracers record) and LlamaIndex's
    to_dict / to_json."""
    from langchain_core.load import dumps

    from langchain_bandit_router import ChatBanditRouter
    from llamaindex_bandit_router import BanditRouterLLM

    headers = {"extra_headers": {"Authorization": f"Bearer {KEY}", "X-Trace": "visible"}}
    with FakeLLMServer(["good"]) as server:
        card = Model("openai/good", input_cost_per_token=1e-6, output_cost_per_token=1e-6, api_base=server.base_url,
                     api_key="sk-card")
        router = Router([card], encoder=fake_encoder, seed=0)
        assert router.complete("hello", **headers).text == "Echo: hello"
        chat, llm = ChatBanditRouter(router, model_kwargs=headers), BanditRouterLLM(router, call_kwargs=headers)
        shown = [repr(chat), str(chat), dumps(chat), repr(llm), llm.to_json(), json.dumps(llm.to_dict())]
    assert KEY not in debug_logs.getvalue() and "[REDACTED]" in debug_logs.getvalue()
    assert not [text for text in shown if KEY in text]
    assert llm.to_dict()["call_kwargs"]["extra_headers"] == {"Authorization": "[REDACTED]", "X-Trace": "visible"}


def test_a_provider_error_echoing_the_prompt_keeps_it_out_of_the_routers_error() -> None:
    """The message of AllModelsFailedError (and a failure's note) is built while the prompt is still redacted:
    a provider whose error repeats the prompt does not put it into an exception that apps log."""
    from bandit_router import AllModelsFailedError
    from bandit_router.testing import last_user_text

    def explode(messages: list) -> str:
        raise RuntimeError(f"upstream exploded on: {last_user_text(messages)}")

    with FakeLLMServer({"echo": ModelBehavior(respond=explode)}) as server:
        card = Model("openai/echo", input_cost_per_token=1e-6, output_cost_per_token=1e-6, api_base=server.base_url,
                     api_key=KEY)
        router = Router([card], encoder=fake_encoder, seed=0)
        for call in (lambda: router.complete(PROMPT), lambda: list(router.stream(PROMPT))):
            with pytest.raises(AllModelsFailedError) as caught:
                call()
            text = "".join(traceback.format_exception(caught.value))
            assert "upstream exploded on" in text and PROMPT not in text and KEY not in text

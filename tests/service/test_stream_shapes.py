"""What a user trial of the service found in OpenAI's wire shapes: upstream chunks without choices, an empty
upstream stream, streams with n > 1, the usage's token details and system_fingerprint, `"stream": null`, and the
`param` of library errors."""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import httpx
import openai
import pytest

from bandit_router.service import Service, parse_config

from .conftest import KEYS, UPSTREAM_KEY, LiveServer, config_dict, start_service

HEADERS = {"Authorization": f"Bearer {KEYS['team-a']}"}
USAGE = {"prompt_tokens": 2000, "completion_tokens": 10, "total_tokens": 2010,
         "prompt_tokens_details": {"cached_tokens": 1920}, "completion_tokens_details": {"reasoning_tokens": 4}}


def _text(index: int, content: str) -> dict[str, Any]:
    return {"choices": [{"index": index, "delta": {"content": content}, "finish_reason": None}]}


def _end(index: int) -> dict[str, Any]:
    return {"choices": [{"index": index, "delta": {}, "finish_reason": "stop"}]}


SCRIPTS: dict[str, list[dict[str, Any]]] = {  # the prompt -> the upstream's chunks before its usage chunk
    "azure": [{"choices": [], "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]},
              _text(0, "Hi"), _end(0)],
    "empty": [],
    "two": [_text(0, "A0"), _text(1, "A1"), _text(0, " B0"), _text(1, " B1"), _end(0), _end(1)],
    "cached": [_text(0, "Hi"), _end(0)],
}


class ScriptedUpstream(BaseHTTPRequestHandler):
    """An OpenAI-compatible upstream answering each prompt of SCRIPTS as OpenAI would shape it; "cached" answers
    carry token details and a system_fingerprint."""

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        base = {"id": "up-1", "created": 1, "model": body["model"]}
        if prompt == "cached":
            base["system_fingerprint"] = "fp_test"
        usage = USAGE if prompt == "cached" else {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
        if not body.get("stream"):
            answer = {**base, "object": "chat.completion", "usage": usage, "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}]}
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for chunk in [*SCRIPTS[prompt], {"choices": [], "usage": usage}] if SCRIPTS[prompt] else []:
            self.wfile.write(f"data: {json.dumps({**base, 'object': 'chat.completion.chunk', **chunk})}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


@pytest.fixture(scope="module")
def scripted() -> Iterator[LiveServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedUpstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with start_service(f"http://127.0.0.1:{server.server_address[1]}/v1") as served:
            yield served
    finally:
        server.shutdown()
        server.server_close()


def events(served: LiveServer, prompt: str, **body: Any) -> list[dict[str, Any]]:
    """The data of a stream's SSE events (without the final [DONE])."""
    with httpx.stream("POST", served.url + "/v1/chat/completions", headers=HEADERS, timeout=30, json={
            "model": "router", "messages": [{"role": "user", "content": prompt}], "stream": True, **body}) as response:
        assert response.status_code == 200
        data = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    return [json.loads(d) for d in data[:-1]]


def test_an_upstream_chunk_without_choices_is_not_relayed(scripted: LiveServer) -> None:
    chunks = events(scripted, "azure")
    assert all(c["choices"] for c in chunks)  # `chunk.choices[0].delta` never fails
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hi"
    *earlier, last = events(scripted, "azure", stream_options={"include_usage": True})
    assert all(c["choices"] for c in earlier) and last["choices"] == []


def test_an_empty_upstream_stream_ends_in_one_finish_chunk(scripted: LiveServer) -> None:
    [only] = events(scripted, "empty")
    assert only["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]
    assert only["usage"] is not None and only["bandit_router"]["route_id"] == only["id"]
    finish, usage = events(scripted, "empty", stream_options={"include_usage": True})
    assert finish["choices"][0]["finish_reason"] == "stop" and finish["usage"] is None
    assert usage["choices"] == [] and usage["bandit_router"]["route_id"] == usage["id"]


class NoChunks:
    """A routed stream that ends before its first chunk."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.decision = SimpleNamespace(route_id="r-empty", model="openai/model-a", cost_weight=0.0, task=None,
                                        failed=[], feedback_token=None, created_at=time.time())
        self.cost, self.usage = 0.0, {}

    async def __aiter__(self) -> Any:
        return
        yield


@pytest.mark.parametrize("include_usage", [False, True])
def test_a_stream_without_chunks_still_ends_in_a_finish_chunk(served: LiveServer, monkeypatch, include_usage) -> None:
    monkeypatch.setattr(served.service.router, "astream", NoChunks)
    chunks = events(served, "x", **({"stream_options": {"include_usage": True}} if include_usage else {}))
    assert chunks[0]["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]
    assert len(chunks) == 1 + include_usage and chunks[-1]["bandit_router"]["route_id"] == "r-empty"


def test_every_choice_of_a_stream_with_n_2_gets_its_finish_reason(scripted: LiveServer) -> None:
    client = openai.OpenAI(base_url=scripted.url + "/v1", api_key=KEYS["team-a"], max_retries=0)
    with client.chat.completions.stream(model="router", messages=[{"role": "user", "content": "two"}], n=2) as stream:
        final = stream.get_final_completion()
    assert [(c.index, c.message.content, c.finish_reason) for c in final.choices] == [
        (0, "A0 B0", "stop"), (1, "A1 B1", "stop")]
    chunks = events(scripted, "two", n=2, stream_options={"include_usage": True})
    assert sorted(c["index"] for chunk in chunks for c in chunk["choices"] if c["finish_reason"]) == [0, 1]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 3


def test_the_usage_keeps_its_token_details_and_the_system_fingerprint(scripted: LiveServer) -> None:
    details = {key: USAGE[key] for key in ("prompt_tokens_details", "completion_tokens_details")}
    answer = httpx.post(scripted.url + "/v1/chat/completions", headers=HEADERS,
                        json={"model": "router", "messages": [{"role": "user", "content": "cached"}]}).json()
    assert answer["usage"] == USAGE and answer["system_fingerprint"] == "fp_test"
    last = events(scripted, "cached")[-1]
    assert {key: last["usage"][key] for key in details} == details and last["system_fingerprint"] == "fp_test"
    usage = events(scripted, "cached", stream_options={"include_usage": True})[-1]["usage"]
    assert {key: usage[key] for key in details} == details


def test_stream_null_is_false(served: LiveServer) -> None:
    response = httpx.post(served.url + "/v1/chat/completions", headers=HEADERS,
                          json={"model": "router", "messages": [{"role": "user", "content": "x"}], "stream": None})
    assert response.status_code == 200 and response.json()["object"] == "chat.completion"


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_a_too_large_output_limit_is_named_as_the_client_sent_it(upstream, field) -> None:
    config = config_dict(upstream.base_url)
    for model in config["models"]:
        model["max_output_tokens"] = 1000
    with LiveServer(Service(parse_config(config, env={"UPSTREAM_KEY": UPSTREAM_KEY}))) as served:
        response, window = (httpx.post(served.url + "/v1/chat/completions", headers=HEADERS, json={
            "model": "router", "messages": [{"role": "user", "content": "x"}], field: limit})
            for limit in (5000, 100_000_000))
    error = response.json()["error"]
    assert response.status_code == 400 and error["code"] == "no_eligible_model"
    assert error["param"] == field and error["message"].startswith(f"{field}=5000 is more than")
    error = window.json()["error"]  # over every context window: named inside the message
    assert error["param"] == field and f"{field}=100000000" in error["message"]


def test_refused_ratings_name_their_field(upstream) -> None:
    config = config_dict(upstream.base_url, feedback={"secret_env": "FEEDBACK_SECRET"})
    env = {"UPSTREAM_KEY": UPSTREAM_KEY, "FEEDBACK_SECRET": "a-long-shared-secret-for-tests"}
    with LiveServer(Service(parse_config(config, env=env))) as served:
        answer = httpx.post(served.url + "/v1/chat/completions", headers=HEADERS,
                            json={"model": "router", "messages": [{"role": "user", "content": "x"}]}).json()
        rated = [httpx.post(served.url + "/v1/feedback", headers=HEADERS,
                            json={"route_id": answer["id"], "score": 1.0, "feedback_token": token})
                 for token in (None, "1.forged", *[answer["bandit_router"]["feedback_token"]] * 2)]
    assert [(r.status_code, r.json().get("error", {}).get("param")) for r in rated] == [
        (403, "feedback_token"), (403, "feedback_token"), (200, None), (409, "route_id")]

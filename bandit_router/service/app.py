"""The HTTP service: an OpenAI-compatible chat-completions endpoint in front of one Router, with feedback,
models, health and Prometheus metrics (Starlette on uvicorn)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import threading
import time
import uuid
from collections import OrderedDict
from contextlib import aclosing
from contextvars import ContextVar
from typing import Any, AsyncGenerator, AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import StoreUnavailableError
from ..router import Router
from ..store import StateStore
from ..streaming import AsyncRoutedStream
from .auth import Tenant
from .config import ServiceConfig
from .metrics import Metrics
from .directory import FORWARDED, route_directory
from .openai_api import (ROUTER_MODEL, APIError, ChatRequest, api_error, chunk_body, completion_body, endpoints,
                         finish_choices, model_object, parse_chat, parse_feedback, stream_broken, stream_chunk,
                         usage_chunk, usage_details, with_usage)

__all__ = ["Service"]

log = logging.getLogger(__name__)
BODY_TIMEOUT = 30.0  # seconds a request body may take to arrive (then 408)
_CLOSE = {"Connection": "close"}  # a refused body is not read on: the connection ends with the answer
HEALTH_TIMEOUT = 1.0  # seconds /healthz waits for the state store to answer (then it reports it unavailable)
_REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")  # the id of the request being answered
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")  # a client's X-Request-Id that is echoed (else a new one)


class _RequestId:
    """ASGI middleware: every answer carries `x-request-id`: the client's `X-Request-Id` when it is a plain token of
    up to 128 characters, else a new one; the service's log names it with each failure."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("x-request-id", "")
        request_id = given if _CLIENT_ID.fullmatch(given) else uuid.uuid4().hex

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["x-request-id"] = request_id
            await send(message)

        token = _REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _REQUEST_ID.reset(token)


def _sse(body: Any) -> bytes:
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _finished(body: dict[str, Any]) -> bool:
    return any(choice.get("finish_reason") for choice in body["choices"])


def _route_headers(decision: Any) -> dict[str, str]:
    """The route id, model and feedback token as response headers too, for clients that keep no extra body field
    (LangChain's ChatOpenAI with include_response_headers=True shows them in response_metadata["headers"])."""
    headers = {"x-bandit-router-route-id": decision.route_id, "x-bandit-router-model": decision.model}
    if decision.feedback_token is not None:
        headers["x-bandit-router-feedback-token"] = decision.feedback_token
    return headers


class _Finishes:
    """Which choices of a stream got a finish_reason: LiteLLM's stream wrapper sends only choice 0's (n > 1)."""

    def __init__(self) -> None:
        self.started: set[int] = set()
        self.ended: set[int] = set()
        self.reason = "stop"  # the last finish_reason seen

    def see(self, body: dict[str, Any]) -> None:
        for choice in body["choices"]:
            self.started.add(choice["index"])
            if choice["finish_reason"]:
                self.ended.add(choice["index"])
                self.reason = choice["finish_reason"]

    def missing(self) -> list[dict[str, Any]]:
        """Choices ending each one left unfinished with the last finish_reason seen (choice 0 for a stream that
        sent none)."""
        return finish_choices(sorted(self.started - self.ended) or ([] if self.ended else [0]), self.reason)


class Service:
    """One service process: the Router a config describes, who owns which route, and the process's metrics."""

    def __init__(self, config: ServiceConfig, router: Router | None = None, advertise_url: str | None = None) -> None:
        self.config = config
        self.router = router if router is not None else config.build_router()
        self.directory = route_directory(config, advertise_url)
        self.endpoints = endpoints(m.api_base for m in self.router.models.values())  # not shown to tenants
        self.keys = config.keyring()
        self.metrics = Metrics()
        self._routes: OrderedDict[str, list] = OrderedDict()  # route_id -> [tenant, created_at, rated]
        self._lock = threading.Lock()
        self._health = _StoreProbe(self.router.replica.store if self.router.replica is not None else None)
        self.app = Starlette(routes=[
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/feedback", self.feedback, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", self.model, methods=["GET"]),
            Route("/healthz", self.health, methods=["GET"]),
            Route("/metrics", self.scrape, methods=["GET"]),
        ], exception_handlers={404: self._not_found, 405: self._not_found}, middleware=[Middleware(_RequestId)])

    # -- helpers --------------------------------------------------------------------------------------------
    @staticmethod
    async def _not_found(request: Request, exc: Exception) -> JSONResponse:
        error = APIError(getattr(exc, "status_code", 404), f"Invalid URL ({request.method} {request.url.path})",
                         code="unknown_url")
        return JSONResponse(error.body, status_code=error.status)

    def _tenant(self, request: Request) -> Tenant:
        header = request.headers.get("authorization", "")
        key = header[7:].strip() if header[:7].lower() == "bearer " else None
        tenant = self.keys.tenant(key)
        if tenant is None:
            raise APIError(401, "Incorrect or missing API key: send 'Authorization: Bearer <key>' with a key this "
                                "service knows", code="invalid_api_key")
        return tenant

    async def _body(self, request: Request) -> bytes:
        """The request body, read as it streams in: 413 as soon as it passes server.max_body_bytes (a chunked body
        has no content-length), 408 if it takes over BODY_TIMEOUT seconds; both close the connection."""
        limit = self.config.max_body_bytes
        too_large = APIError(413, f"request body exceeds server.max_body_bytes = {limit}", code="body_too_large",
                             headers=_CLOSE)
        if int(request.headers.get("content-length") or 0) > limit:
            raise too_large

        async def read() -> bytes:
            chunks: list[bytes] = []
            size = 0
            async with aclosing(request.stream()) as stream:
                async for chunk in stream:
                    size += len(chunk)
                    if size > limit:
                        raise too_large
                    chunks.append(chunk)
            return b"".join(chunks)

        try:
            return await asyncio.wait_for(read(), BODY_TIMEOUT)
        except ClientDisconnect:  # nobody is left to answer: counted as nginx's 499, not as our 500
            raise APIError(499, "the client closed the connection before its body arrived",
                           code="client_closed") from None
        except asyncio.TimeoutError:
            raise APIError(408, f"the request body did not arrive within {BODY_TIMEOUT:g} seconds",
                           code="body_timeout", headers=_CLOSE) from None

    @staticmethod
    def _json(body: bytes) -> Any:
        try:
            return json.loads(body)
        except ValueError as error:
            raise APIError(400, f"the request body is not valid JSON: {error}", code="invalid_json") from None
        except RecursionError:
            raise APIError(400, "the request body nests arrays or objects too deeply to parse (about "
                                f"{sys.getrecursionlimit()} levels at most)", code="invalid_json") from None

    def _remember(self, route_id: str, tenant: str) -> None:
        with self._lock:
            self._routes[route_id] = [tenant, time.time(), False]
            self._forget_old()
        if self.directory is not None:
            self.directory.claim(route_id, self.router.feedback_settings.pending_ttl)

    def _forget_old(self) -> None:
        deadline = time.time() - self.router.feedback_settings.pending_ttl
        while self._routes and (len(self._routes) > self.router.feedback_settings.max_pending
                                or next(iter(self._routes.values()))[1] < deadline):
            self._routes.popitem(last=False)

    @staticmethod
    def _report(api: APIError, error: BaseException, tenant: str, where: str) -> APIError:
        """`api`, logged when it is the service's or the upstream's fault: its code and the exception's type (the
        cause's, for an APIError raised from one), and a state store's message, which the tenant is not shown."""
        if api.status >= 500:
            cause = error.__cause__ if isinstance(error, APIError) and error.__cause__ is not None else error
            detail = f": {cause}" if isinstance(cause, StoreUnavailableError) else ""
            log.warning("%s for tenant %s failed: %s (%s%s) [request %s]", where, tenant, api.body["error"]["code"],
                        type(cause).__name__, detail, _REQUEST_ID.get())
        return api

    def _failed(self, error: BaseException, tenant: str, where: str,
                sent: dict[str, Any] | None = None) -> JSONResponse:
        """The error answer for `error` (`sent`: the request's fields passed to the model, named in `param`)."""
        api = self._report(api_error(error, self.endpoints, sent), error, tenant, where)
        return JSONResponse(api.body, status_code=api.status, headers=api.headers)

    def _extension(self, decision: Any, cost: float | None) -> dict[str, Any]:
        return {"route_id": decision.route_id, "model": decision.model, "cost_weight": decision.cost_weight,
                "task": decision.task, "cost": cost, "failed": list(decision.failed),
                "feedback_token": decision.feedback_token}

    def _served(self, decision: Any, cost: float | None, started: float, ended: float) -> None:
        model = decision.model
        self.metrics.inc("bandit_router_decisions_total", model=model)
        if cost is not None:
            self.metrics.inc("bandit_router_spend_usd_total", cost, model=model)
        self.metrics.observe("bandit_router_routing_seconds", max(decision.created_at - started, 0.0))
        self.metrics.observe("bandit_router_upstream_seconds", max(ended - decision.created_at, 0.0), model=model)
        self.metrics.observe("bandit_router_request_seconds", ended - started)

    # -- endpoints ------------------------------------------------------------------------------------------
    async def chat(self, request: Request) -> Response:
        started = time.time()
        tenant_name, sent = "-", None
        try:
            tenant = self._tenant(request)
            tenant_name = tenant.name
            chat = parse_chat(self._json(await self._body(request)), self.config.max_messages)
            sent = chat.params
            kwargs = {**chat.params, "task": chat.task,
                      "budget_key": None if self.keys.open else tenant.budget_key}
            if chat.stream:  # counted when it ends (a stream that breaks is not a 200)
                return await self._stream(chat, kwargs, tenant, started)
            completion = await self.router.acomplete(chat.messages, chat.cost_weight, chat.models, **kwargs)
            decision = completion.decision
            self._remember(decision.route_id, tenant.name)
            self._served(decision, completion.cost, started, time.time())
            body = completion_body(completion.response, decision.route_id, decision.model, completion.usage,
                                   self._extension(decision, completion.cost))
            response = JSONResponse(body, headers=_route_headers(decision))
        except Exception as error:  # every failure answers in OpenAI's error shape
            response = self._failed(error, tenant_name, "chat completion", sent)
        self.metrics.inc("bandit_router_requests_total", status=str(response.status_code))
        return response

    async def _stream(self, chat: ChatRequest, kwargs: dict[str, Any], tenant: Tenant, started: float) -> Response:
        await self.router.context.prefetch(chat.messages, self.router.limits.max_prompt_chars)  # off the loop
        stream = self.router.astream(chat.messages, chat.cost_weight, chat.models, **kwargs)
        chunks = stream.__aiter__()
        try:
            first = await chunks.__anext__()  # a failure before the first chunk is still an HTTP error
        except StopAsyncIteration:
            first = None
        except BaseException:
            await chunks.aclose()
            raise
        self._remember(stream.decision.route_id, tenant.name)
        return StreamingResponse(self._relay(chat, stream, chunks, first, tenant.name, started),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no",
                                          **_route_headers(stream.decision)})

    async def _relay(self, chat: ChatRequest, stream: AsyncRoutedStream, chunks: AsyncGenerator[Any, None],
                     first: Any, tenant: str, started: float) -> AsyncIterator[bytes]:
        """The stream's SSE events, each chunk with the route id. Without include_usage the finish chunk is held
        back to carry the usage and the `bandit_router` field; a break after the first chunk ends in an error
        event. A stream cut part-way (broken, or closed by its client) counts the worst case its budget was charged
        as spend."""
        decision = stream.decision
        created, relayed, held, ended = int(time.time()), 0, None, False
        pending = [] if first is None else [first]
        finishes = _Finishes()
        details: dict[str, Any] = {}  # the token details of the upstream usage
        try:
            while True:
                chunk = pending.pop() if pending else await chunks.__anext__()
                details = usage_details(getattr(chunk, "usage", None)) or details
                body = chunk_body(chunk, decision.route_id, decision.model, chat.include_usage)
                if body is None:
                    continue
                finishes.see(body)
                created, relayed = body["created"] or created, relayed + 1
                if held is not None:
                    yield _sse(held)
                    held = None
                if chat.include_usage or not _finished(body):
                    yield _sse(body)
                else:
                    held = body
        except StopAsyncIteration:
            ended = True
        except Exception as error:  # broken after the first chunk: the client gets an error event
            api = self._report(stream_broken(error, relayed, self.endpoints), error, tenant, "stream")
            self.metrics.inc("bandit_router_requests_total", status=str(api.status))
            yield (b"" if held is None else _sse(held)) + _sse(api.body)
            return
        except (GeneratorExit, asyncio.CancelledError):  # the client went away: counted as nginx's 499
            self.metrics.inc("bandit_router_requests_total", status="499")
            raise
        finally:
            await chunks.aclose()  # cut part-way: the budget is charged the worst case, which stream.cost then holds
            if not ended and stream.cost is not None:
                self.metrics.inc("bandit_router_spend_usd_total", stream.cost, model=decision.model)
        self._served(decision, stream.cost, started, time.time())
        self.metrics.inc("bandit_router_requests_total", status="200")
        last = self._last_chunks(chat, stream, held, created, finishes.missing(), details)
        yield b"".join(map(_sse, last)) + b"data: [DONE]\n\n"

    def _last_chunks(self, chat: ChatRequest, stream: AsyncRoutedStream, held: dict[str, Any] | None, created: int,
                     missing: list[dict[str, Any]], details: dict[str, Any]) -> list[dict[str, Any]]:
        """The stream's last chunks: the finish of each choice left unfinished (`missing`), and the usage (with the
        upstream's token `details`) and the `bandit_router` field: in a chunk without choices when the client asked
        include_usage (as OpenAI), else on the finish chunk (one is made when the upstream sent none)."""
        decision = stream.decision
        extension = self._extension(decision, stream.cost)
        if chat.include_usage:
            ends = [stream_chunk(decision.route_id, decision.model, created, missing, True)] if missing else []
            return ends + [usage_chunk(decision.route_id, decision.model, created, stream.usage, details, extension)]
        last = held or stream_chunk(decision.route_id, decision.model, created, [], False)
        return [with_usage({**last, "choices": last["choices"] + missing}, stream.usage, details, extension)]

    async def feedback(self, request: Request) -> Response:
        tenant_name = "-"
        try:
            tenant = self._tenant(request)
            tenant_name = tenant.name
            body = await self._body(request)
            route_id, score, token = parse_feedback(self._json(body))
            with self._lock:
                owner = self._routes.get(route_id)
            if owner is None and self.directory is not None and FORWARDED not in request.headers:
                elsewhere = self.directory.owner(route_id)
                if elsewhere is not None:
                    self.metrics.inc("bandit_router_feedback_forwarded_total")
                    return await self.directory.forward(elsewhere, request, body)
            self.metrics.inc("bandit_router_feedback_received_total")
            if owner is None or owner[0] != tenant.name:  # another tenant's route looks like an unknown one
                raise APIError(404, f"unknown route_id {route_id!r}: this replica answered no such request for "
                                    "this API key (or it expired)", code="unknown_route", param="route_id")
            persisted = await run_in_threadpool(self._rate, route_id, score, token, tenant.name)
        except Exception as error:
            response = self._failed(error, tenant_name, "feedback")
            code = json.loads(response.body)["error"]["code"]
            if code not in ("invalid_api_key", "invalid_json", "body_too_large", "body_timeout", "client_closed"):
                self.metrics.inc("bandit_router_feedback_rejected_total", reason=str(code))
            return response
        self.metrics.inc("bandit_router_feedback_applied_total")
        return JSONResponse({"route_id": route_id, "applied": True, "persisted": persisted})

    def _rate(self, route_id: str, score: Any, token: str | None, tenant: str) -> bool:
        """Apply a rating; whether it is merged into the state store (False without one, or when the store does
        not answer: the rating stays queued on this replica for the next sync)."""
        self.router.feedback(route_id, score, token=token, source=tenant)
        with self._lock:
            if route_id in self._routes:
                self._routes[route_id][2] = True
        if not self.config.state:
            return False
        try:
            self.router.sync()
        except StoreUnavailableError as error:  # applied all the same: a resent rating would be a duplicate
            log.warning("feedback for tenant %s applied but not persisted, queued for the next sync: %s [request %s]",
                        tenant, error, _REQUEST_ID.get())
            return False
        return True

    async def models(self, request: Request) -> Response:
        try:
            self._tenant(request)
        except APIError as error:
            return JSONResponse(error.body, status_code=error.status)
        return JSONResponse({"object": "list", "data": [model_object(ROUTER_MODEL, list(self.router.models))]})

    async def model(self, request: Request) -> Response:
        """OpenAI's model retrieve, for `router` and `router:<dial>`."""
        try:
            self._tenant(request)
            return JSONResponse(model_object(request.path_params["model_id"], list(self.router.models)))
        except APIError as error:
            return JSONResponse(error.body, status_code=error.status)

    async def health(self, request: Request) -> Response:
        """ok, or 503 while the state store (which holds the shared budget too) cannot be reached."""
        if await self._health.reachable():
            return JSONResponse({"status": "ok", "models": list(self.router.models)})
        return JSONResponse({"status": "unavailable", "reason": "the state store is unavailable",
                             "models": list(self.router.models)}, status_code=503)

    async def scrape(self, request: Request) -> Response:
        with self._lock:
            self._forget_old()
            pending = sum(not rated for _, _, rated in self._routes.values())
        failures = {(("model", m),): float(n) for m, n in dict(self.router.failures).items()}
        read: dict[str, tuple[str, str, dict]] = {
            "bandit_router_failures_total": ("counter", "Upstream calls that failed, by model.",
                                             failures),
            "bandit_router_pending_decisions": ("gauge", "Answered requests of this replica still waiting for a "
                                                         "rating.", {(): float(pending)}),
        }
        budget = self.router.budget
        if budget is not None:
            read["bandit_router_budget_spent_usd"] = ("gauge", "Settled spend of the current budget period.",
                                                      {(): budget.spent()})
            read["bandit_router_budget_remaining_usd"] = ("gauge", "What the budget can still reserve this period.",
                                                          {(): budget.remaining()})
        return Response(self.metrics.render(read), media_type="text/plain; version=0.0.4; charset=utf-8")


class _StoreProbe:
    """Whether the router's state store answers its `ping` within HEALTH_TIMEOUT. One probe runs at a time
    (concurrent health checks wait for the same one). The shared budget is kept in the same Redis or file
    (ServiceConfig.make_budget), so one probe answers for both."""

    def __init__(self, store: StateStore | None) -> None:
        self._store = store
        self._probe: asyncio.Future[str | None] | None = None
        self._down = False

    @staticmethod
    def _check(store: StateStore) -> str | None:
        """Why `store` cannot be reached, or None."""
        try:
            store.ping(HEALTH_TIMEOUT)
        except StoreUnavailableError as error:  # it names the store and the cause
            return str(error)
        except Exception as error:  # a ping that failed otherwise: still no answer
            return f"{store!r} failed: {type(error).__name__}: {error}"
        return None

    async def reachable(self) -> bool:
        """Whether the store answered (True without a store); a change is logged, with the cause when it fails."""
        store = self._store
        if store is None:
            return True
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().run_in_executor(None, self._check, store)
        try:
            problem = await asyncio.wait_for(asyncio.shield(self._probe), HEALTH_TIMEOUT)
        except asyncio.TimeoutError:
            problem = f"{store!r} gave no answer within {HEALTH_TIMEOUT:g} s"
        if (problem is not None) != self._down:
            self._down = problem is not None
            if problem is None:
                log.info("health: %r answers again", store)
            else:
                log.warning("health: %s", problem)
        return problem is None

"""Which replica served which answer, kept in Redis, so a rating sent to any replica reaches the one that holds
the answer's pending decision (a load balancer need not be sticky)."""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import StoreUnavailableError
from .config import ServiceConfig
from .openai_api import APIError

__all__ = ["RouteDirectory", "FORWARDED"]

FORWARDED = "x-bandit-router-forwarded"  # set on a forwarded rating, which is never forwarded again

log = logging.getLogger(__name__)


class RouteDirectory:
    """Route id -> the URL of the replica that served it (`advertise_url`), for as long as it can be rated."""

    def __init__(self, config: ServiceConfig, advertise_url: str) -> None:
        import redis

        self.url = advertise_url.rstrip("/")
        self._redis: Any = redis.Redis.from_url(config.state["redis"], socket_timeout=2.0, socket_connect_timeout=2.0)
        self._prefix = f"bandit-router:{config.state.get('namespace', 'default')}:route:"
        self._client: Any = None

    def claim(self, route_id: str, ttl: float) -> None:
        """Record that this replica serves `route_id` (best effort: a rating sent here still works without it)."""
        import redis

        try:
            self._redis.set(self._prefix + route_id, self.url, ex=max(int(ttl), 1))
        except redis.RedisError as error:
            log.warning("could not record route ownership in Redis (%s)", type(error).__name__)

    def owner(self, route_id: str) -> str | None:
        """The URL of the replica that served `route_id`, if it is another one."""
        import redis

        try:
            url = self._redis.get(self._prefix + route_id)
        except redis.RedisError as error:
            raise StoreUnavailableError(f"Redis is unavailable to find the replica of route_id {route_id!r} "
                                        f"({type(error).__name__})") from None
        url = None if url is None else url.decode()
        return None if url in (None, self.url) else url

    async def forward(self, url: str, request: Request, body: bytes) -> Response:
        """The owner's answer to the same rating (same key), or 503 if it cannot be reached."""
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(timeout=30)
        headers = {"authorization": request.headers.get("authorization", ""), "content-type": "application/json",
                   FORWARDED: "1"}
        try:
            answer = await self._client.post(url + "/v1/feedback", content=body, headers=headers)
        except httpx.HTTPError as error:
            api = APIError(503, f"the replica that served this answer ({url}) cannot be reached "
                                f"({type(error).__name__}); the rating was not applied", "server_error",
                           "replica_unavailable")
            return JSONResponse(api.body, status_code=api.status)
        return Response(answer.content, status_code=answer.status_code, media_type="application/json")

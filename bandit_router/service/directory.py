"""Which replica served which answer, kept where the replicas share their state (Redis, or the SQLite file of one
machine's processes), so a rating sent to any replica reaches the one that holds the answer's pending decision
(a load balancer need not be sticky).

SQLite table: route_owners (a row per namespace and route id: the owner's URL and when the row expires; expired
rows are dropped as new ones are written).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from typing import Any, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import StoreUnavailableError
from ..store.sqlite import SharedFile, immediate
from .config import ServiceConfig
from .openai_api import APIError

__all__ = ["RouteDirectory", "RedisDirectory", "SQLiteDirectory", "route_directory", "FORWARDED",
           "REPLICA_UNAVAILABLE"]

FORWARDED = "x-bandit-router-forwarded"  # set on a forwarded rating, which is never forwarded again
REPLICA_UNAVAILABLE = "the replica that served this answer cannot be reached; the rating was not applied"
TIMEOUT = 2.0  # seconds a lookup or a record may wait for the shared store

log = logging.getLogger(__name__)

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS route_owners (namespace TEXT NOT NULL, route_id TEXT NOT NULL, url TEXT NOT NULL,
                                         expires REAL NOT NULL, PRIMARY KEY (namespace, route_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS route_owners_expiry ON route_owners (expires);
"""


def route_directory(config: ServiceConfig, advertise_url: str | None) -> RouteDirectory | None:
    """The directory of the config's shared state, or None when the state is not shared or this replica has no
    URL the others can reach."""
    if not advertise_url:
        return None
    namespace = config.state.get("namespace", "default")
    if "redis" in config.state:
        return RedisDirectory(config.state["redis"], namespace, advertise_url)
    if "sqlite" in config.state:
        return SQLiteDirectory(config.state["sqlite"], namespace, advertise_url)
    return None


class RouteDirectory(ABC):
    """Route id -> the URL of the replica that served it (`advertise_url`), for as long as it can be rated."""

    where = "the shared store"

    def __init__(self, advertise_url: str) -> None:
        self.url = advertise_url.rstrip("/")
        self._client: Any = None

    @abstractmethod
    def _record(self, route_id: str, ttl: float) -> None:
        """Store this replica's URL for `route_id` for `ttl` seconds; StoreUnavailableError if the store fails."""

    @abstractmethod
    def _lookup(self, route_id: str) -> str | None:
        """The URL stored for `route_id` (None if none or expired); StoreUnavailableError if the store fails."""

    def claim(self, route_id: str, ttl: float) -> None:
        """Record that this replica serves `route_id` (best effort: a rating sent here still works without it)."""
        try:
            self._record(route_id, ttl)
        except StoreUnavailableError as error:
            log.warning("could not record route ownership in %s (%s)", self.where, error)

    def owner(self, route_id: str) -> str | None:
        """The URL of the replica that served `route_id`, if it is another one."""
        url = self._lookup(route_id)
        return None if url in (None, self.url) else url

    async def forward(self, url: str, request: Request, body: bytes) -> Response:
        """The owner's answer to the same rating (same key), or 503 REPLICA_UNAVAILABLE if it cannot be reached or
        what answers is not a replica (e.g. another service now on its port): the tenant is shown neither the
        owner's URL nor that answer, which the operator's log gets."""
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(timeout=30)
        headers = {"authorization": request.headers.get("authorization", ""), "content-type": "application/json",
                   FORWARDED: "1"}
        try:
            answer = await self._client.post(url + "/v1/feedback", content=body, headers=headers)
        except httpx.HTTPError as error:
            cause = f"{type(error).__name__}: {error}"
        else:
            if _from_a_replica(answer):
                return Response(answer.content, status_code=answer.status_code, media_type="application/json")
            cause = f"HTTP {answer.status_code} that is not a replica's answer to a rating"
        log.warning("passing a rating on to the replica at %s failed: replica_unavailable (%s)", url, cause)
        api = APIError(503, REPLICA_UNAVAILABLE, "server_error", "replica_unavailable")
        return JSONResponse(api.body, status_code=api.status)


def _from_a_replica(answer: Any) -> bool:
    """Whether an HTTP answer is a replica's to a rating: a JSON object with `applied` (200) or an OpenAI error."""
    try:
        body = answer.json()
    except ValueError:
        return False
    if not isinstance(body, dict):
        return False
    return "applied" in body if answer.status_code == 200 else isinstance(body.get("error"), dict)


class RedisDirectory(RouteDirectory):
    """Owners as Redis keys "bandit-router:<namespace>:route:<route id>" expiring with the route."""

    where = "Redis"

    def __init__(self, url: str, namespace: str, advertise_url: str) -> None:
        import redis

        super().__init__(advertise_url)
        self._redis: Any = redis.Redis.from_url(url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
        self._prefix = f"bandit-router:{namespace}:route:"

    def _redis_call(self, call: Callable[[], Any], doing: str) -> Any:
        import redis

        try:
            return call()
        except redis.RedisError as error:
            raise StoreUnavailableError(f"Redis is unavailable to {doing} ({type(error).__name__})") from None

    def _record(self, route_id: str, ttl: float) -> None:
        self._redis_call(lambda: self._redis.set(self._prefix + route_id, self.url, ex=max(int(ttl), 1)),
                         "record route ownership")

    def _lookup(self, route_id: str) -> str | None:
        url = self._redis_call(lambda: self._redis.get(self._prefix + route_id),
                               f"find the replica of route_id {route_id!r}")
        return None if url is None else url.decode()


class SQLiteDirectory(RouteDirectory):
    """Owners in the route_owners table of the SQLite file at `path`, shared by the processes of one machine."""

    where = "the SQLite file"

    def __init__(self, path: str, namespace: str, advertise_url: str, clock: Callable[[], float] = time.time) -> None:
        super().__init__(advertise_url)
        self.path, self.namespace, self._clock = str(path), namespace, clock
        # synchronous NORMAL: a row lost to a power cut costs one rating's forwarding
        self._file = SharedFile(self.path, TIMEOUT, _SQLITE_SCHEMA, synchronous="NORMAL")

    def _record(self, route_id: str, ttl: float) -> None:
        now = self._clock()

        def record() -> None:
            with immediate(self._file.conn) as conn:
                conn.execute("DELETE FROM route_owners WHERE expires < ?", (now,))
                conn.execute("INSERT OR REPLACE INTO route_owners VALUES (?, ?, ?, ?)",
                             (self.namespace, route_id, self.url, now + max(ttl, 1.0)))

        self._file.run(record)

    def _lookup(self, route_id: str) -> str | None:
        row = self._file.run(lambda: self._file.conn.execute(
            "SELECT url FROM route_owners WHERE namespace=? AND route_id=? AND expires >= ?",
            (self.namespace, route_id, self._clock())).fetchone())
        return None if row is None else str(row[0])

"""Signed feedback tokens: proof that a feedback call answers a decision this router made, recently.

A token is "<expires>.<signature>": `expires` a Unix time in whole seconds, the signature an HMAC-SHA256
(base64url) over the route_id and `expires` under the router's secret. So a token cannot be forged without
the secret, is valid for one route_id only, and stops being valid at `expires`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from .checks import check_positive
from .errors import ConfigError, ExpiredFeedbackTokenError, InvalidFeedbackTokenError, UnknownRouteError

__all__ = ["FeedbackTokens", "check_route_id"]


def check_route_id(route_id: Any) -> str:
    """`route_id` if it can be one the router issued (ASCII text); UnknownRouteError otherwise (e.g. a lone
    surrogate, bytes, None)."""
    if route_id is None:
        raise UnknownRouteError("route_id is None: the reply named no routed call (a reply served from a cache, "
                                "such as LangChain's, called no model and has nothing to rate)")
    if not isinstance(route_id, str) or not route_id.isascii():
        raise UnknownRouteError(f"unknown route_id {route_id!r}: route ids are the ASCII text a decision carries")
    return route_id


class FeedbackTokens:
    """Issues and verifies feedback tokens under `secret` (at least 16 bytes), valid for `ttl` seconds."""

    def __init__(self, secret: str | bytes, ttl: float = 86_400.0) -> None:
        key = secret.encode() if isinstance(secret, str) else secret
        if not isinstance(key, bytes) or len(key) < 16:
            raise ConfigError("feedback_secret must be a str or bytes of at least 16 bytes")
        check_positive(ttl, "feedback_token_ttl", unit="seconds")
        self._key = key
        self.ttl = float(ttl)

    def __repr__(self) -> str:
        return f"FeedbackTokens(ttl={self.ttl:g})"  # never the secret

    def _sign(self, route_id: str, expires: int) -> str:
        mac = hmac.new(self._key, f"{route_id}\x00{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def issue(self, route_id: str, now: float | None = None) -> str:
        """A token for `route_id`, valid for `ttl` seconds from `now` (default: the current time)."""
        expires = int((time.time() if now is None else now) + self.ttl)
        return f"{expires}.{self._sign(route_id, expires)}"

    def verify(self, route_id: str, token: Any, now: float | None = None) -> None:
        """Return if `token` was issued for `route_id` and has not expired; raise a typed error otherwise."""
        check_route_id(route_id)
        if token is None:
            raise InvalidFeedbackTokenError("feedback needs the decision's feedback_token (this router signs feedback)")
        expires_text, dot, signature = token.partition(".") if isinstance(token, str) else ("", "", "")
        if not (dot and expires_text.isascii() and expires_text.isdigit() and len(expires_text) <= 12):
            raise InvalidFeedbackTokenError("feedback_token is malformed (expected '<expires>.<signature>')")
        expires = int(expires_text)
        if not hmac.compare_digest(signature.encode(), self._sign(route_id, expires).encode()):
            raise InvalidFeedbackTokenError(
                f"feedback_token is not valid for route_id {route_id!r} (forged, damaged or issued for another route)")
        if (time.time() if now is None else now) >= expires:
            raise ExpiredFeedbackTokenError(f"feedback_token for route_id {route_id!r} expired at {expires}")

"""Orkes authentication: an application key id and secret become a JWT sent as `X-Authorization`.

`POST /api/token {"keyId", "keySecret"}` returns `{"token": "<jwt>"}`. The token is refreshed
before it expires (the JWT's `exp` claim, read without verifying it, or a fixed TTL when there
is none), and once more when Conductor answers 401/403 EXPIRED_TOKEN or INVALID_TOKEN. Only one
refresh runs at a time; concurrent callers wait for it and reuse its token. A 404 on
`/api/token` means an OSS server without auth, and the client stops sending the header.

The secret never appears in a log line, an exception message or a URL: it is only in the body
of the token request.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from pydantic import SecretStr

from gateway.conductor.responses import redirected
from gateway.conductor.transport import Reply
from gateway.errors import ConductorError, Unauthorized

log = logging.getLogger("gateway.conductor.auth")

HEADER = "X-Authorization"
DEFAULT_TTL = 45 * 60.0  # the official SDK's default refresh period when exp is unknown
EARLY = 60.0  # refresh this many seconds before exp, or at 90% of lifetimes up to 2 * EARLY
MIN_REFRESH = 5.0  # never sooner: a token at or past exp is reused until a 401 says so
TOKEN_ERRORS = frozenset({"EXPIRED_TOKEN", "INVALID_TOKEN"})

Clock = Callable[[], float]
# Sends a POST of a JSON body to a path under the API base, without auth; returns the answer.
Send = Callable[[str, bytes], Awaitable[Reply]]


class TokenAuth:
    """Holds the current token; `headers()` before each request, `refresh(stale)` after a 401."""

    def __init__(
        self,
        key_id: str,
        key_secret: SecretStr,
        *,
        ttl: float = DEFAULT_TTL,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
    ) -> None:
        self._key_id = key_id
        self._key_secret = key_secret
        self._ttl = ttl
        self._clock = clock  # schedules refreshes
        self._wall = wall  # read against the JWT's exp (epoch seconds)
        self._token: str | None = None
        self._refresh_at = 0.0
        self._generation = 0  # how many tokens were fetched; tells waiters one arrived
        self._lock = asyncio.Lock()
        self.disabled = False  # True once the server said it has no token endpoint (OSS)
        self.refreshes = 0  # how many token requests were made (for tests and metrics)

    async def headers(self, send: Send) -> dict[str, str]:
        """The auth header for the next request, refreshing first if the token is due."""
        if self.disabled:
            return {}
        token = self._token
        if token is None or self._clock() >= self._refresh_at:
            token = await self.refresh(token, send)
        return {HEADER: token} if token else {}

    @property
    def token(self) -> str | None:
        return self._token

    async def refresh(self, stale: str | None, send: Send) -> str | None:
        """Get a new token unless another caller already replaced `stale`, or fetched one
        while this caller waited for the lock (single flight: waiters reuse that token)."""
        generation = self._generation
        async with self._lock:
            if self.disabled or self._generation != generation:
                return self._token
            replaced = self._token is not None and self._token != stale
            if replaced and self._clock() < self._refresh_at:
                return self._token
            await self._fetch(send)
            return self._token

    async def _fetch(self, send: Send) -> None:
        body = {"keyId": self._key_id, "keySecret": self._key_secret.get_secret_value()}
        self.refreshes += 1
        response = await send("/token", orjson.dumps(body))
        if 300 <= response.status_code < 400:
            raise redirected(response)
        if response.status_code == 404:
            log.info("Conductor has no /api/token endpoint (OSS): sending no auth header")
            self.disabled, self._token = True, None
            return
        if response.status_code in (401, 403):
            raise Unauthorized(
                f"POST /api/token: {response.status_code}: key id '{self._key_id}' or its secret "
                "was rejected; check conductor.key_id and conductor.key_secret",
                status=response.status_code,
            )
        if response.status_code >= 400:
            raise ConductorError(
                f"POST /api/token: {response.status_code}: cannot get a token",
                status=response.status_code,
                retryable=response.status_code >= 500,
            )
        self._accept(_token_from(response))

    def _accept(self, token: str) -> None:
        self._token = token
        self._generation += 1
        self._refresh_at = self._clock() + self._refresh_after(token)

    def _refresh_after(self, token: str) -> float:
        """Seconds until the next refresh: EARLY before exp, or at 90% of a short lifetime,
        but never under MIN_REFRESH (else every call would fetch a token)."""
        exp = jwt_expiry(token)
        if exp is None:
            return self._ttl
        lifetime = max(0.0, exp - self._wall())
        ahead = lifetime - EARLY if lifetime > 2 * EARLY else lifetime * 0.9
        return max(MIN_REFRESH, ahead)


def _token_from(response: Reply) -> str:
    try:
        token = orjson.loads(response.content).get("token")
    except (orjson.JSONDecodeError, AttributeError):
        token = None
    if not isinstance(token, str) or not token:
        raise Unauthorized("POST /api/token: the answer has no token", status=response.status_code)
    return token


def jwt_expiry(token: str) -> float | None:
    """The `exp` claim (epoch seconds) of a JWT, read without verifying it; None if absent."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims: Any = orjson.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, orjson.JSONDecodeError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) else None


def is_token_error(response: Reply) -> bool:
    """401/403 whose body names an expired or invalid token: refresh and try once more."""
    if response.status_code not in (401, 403):
        return False
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return False
    return isinstance(body, dict) and body.get("error") in TOKEN_ERRORS

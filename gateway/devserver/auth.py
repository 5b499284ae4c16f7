"""Orkes-style key/secret -> token authentication (§1.1).

`POST /api/token {keyId, keySecret}` returns `{"token": ...}`; every other call must carry
`X-Authorization: <token>`. A missing or unknown token is 401 INVALID_TOKEN and an old one 401
EXPIRED_TOKEN, the codes the official SDKs read to refresh and retry. Secrets and tokens are
never logged.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from gateway.devserver.clock import Clock


class AuthError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class TokenIssuer:
    """The server side of Orkes auth: issues tokens for the key, checks them on each call (the
    client side is `gateway.conductor.auth.TokenAuth`)."""

    def __init__(self, key_id: str, key_secret: str, ttl_seconds: float, clock: Clock) -> None:
        self._key_id = key_id
        self._key_secret = key_secret
        self._ttl_ms = int(ttl_seconds * 1000)
        self._clock = clock
        self._tokens: dict[str, int] = {}  # token -> expiry (epoch ms)
        self.issued = 0

    def issue(self, key_id: Any, key_secret: Any) -> str:
        ok_id = isinstance(key_id, str) and hmac.compare_digest(key_id, self._key_id)
        ok_secret = isinstance(key_secret, str) and hmac.compare_digest(
            key_secret, self._key_secret
        )
        if not (ok_id and ok_secret):
            raise AuthError("INVALID_CREDENTIALS", "Invalid keyId or keySecret")
        now = self._clock.now_ms()
        self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now - self._ttl_ms}
        token = secrets.token_urlsafe(32)
        self._tokens[token] = now + self._ttl_ms
        self.issued += 1
        return token

    def check(self, token: str | None) -> None:
        if not token:
            raise AuthError("INVALID_TOKEN", "Missing X-Authorization header")
        expiry = self._tokens.get(token)
        if expiry is None:
            raise AuthError("INVALID_TOKEN", "Invalid token")
        if self._clock.now_ms() >= expiry:
            raise AuthError("EXPIRED_TOKEN", "Token expired")

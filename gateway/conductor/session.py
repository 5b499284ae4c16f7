"""One request to Conductor, done properly: auth header, timeout, error mapping, safe retries,
and the readiness signal.

Retry policy. A transient failure (`TransientError`, or a 5xx whose body says `retryable`) is
retried with capped exponential backoff and full jitter, up to `max_retries` times, but only
when repeating the request cannot do harm: always when the request never reached Conductor
(connection not opened, 429, a 503 with Retry-After or Conductor's own error body), and
otherwise only for operations the caller marked idempotent (see `gateway.conductor.responses`).
A start without an enforced idempotency key is therefore never repeated after an ambiguous
failure; the error goes to the caller, whose store-based dedupe decides.

Readiness. `ready` turns False when Conductor cannot be reached (connection failures, 502,
503, 504, or `TIMEOUTS_DOWN` timeouts in a row: a hung Conductor is as good as a gone one, and
every stalled call would otherwise spend one of a message's attempts), and a background probe
then asks a cheap, harmless question (GET of a task definition that does not exist) until
any answer comes back; any answer to any request turns `ready` True again. The daemon stops
intake while it is False instead of burning retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import orjson

from gateway.backoff import capped, jittered
from gateway.cancellation import cancel
from gateway.conductor.auth import HEADER, TokenAuth, is_token_error
from gateway.conductor.responses import Throttled, never_sent, raise_for_status
from gateway.conductor.transport import Reply, Request, Transport
from gateway.errors import ConductorError, ConductorTimeout, ConductorUnavailable

log = logging.getLogger("gateway.conductor")

PROBE_PATH = "/metadata/taskdefs/__gateway_readiness_probe__"
DOWN_STATUSES = frozenset({502, 503, 504})
TIMEOUTS_DOWN = 3  # consecutive timeouts (no answer at all) that mark Conductor not ready
JSON = "application/json"
TEXT = "text/plain, application/json"


class Session:
    """Sends requests below `base_url` (which ends in /api) over a Transport."""

    def __init__(
        self,
        base_url: str,
        transport: Transport,
        *,
        auth: TokenAuth | None = None,
        timeout: float = 10.0,
        max_retries: int = 5,
        backoff_base: float = 0.2,
        backoff_cap: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.transport = transport
        self.auth = auth
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._up = asyncio.Event()
        self._probe: asyncio.Task[None] | None = None
        self._timeouts = 0  # consecutive requests that got no answer in time
        self.last_error: str | None = None  # why Conductor was last found unreachable

    # -- readiness ----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """False until Conductor has answered, and again while it cannot be reached."""
        return self._up.is_set()

    async def wait_ready(self) -> None:
        """Block until Conductor answers (probing in the background meanwhile)."""
        if not self._up.is_set():
            self.start_probe()
            await self._up.wait()

    def _mark_up(self) -> None:
        if not self._up.is_set():
            log.info("Conductor at %s is reachable", self.base_url)
            self._up.set()

    def _mark_down(self, reason: str) -> None:
        self.last_error = reason
        if self._up.is_set():
            log.warning("Conductor at %s is unreachable: %s", self.base_url, reason)
            self._up.clear()
        self.start_probe()

    def start_probe(self) -> None:
        """Probe in the background until Conductor answers (no-op if one is running)."""
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._run_probe(), name="conductor-readiness")

    async def _run_probe(self) -> None:
        attempt = 0
        while not self._up.is_set():
            try:
                await self._send_once(self._request("GET", PROBE_PATH, None, None, JSON))
            except ConductorError as exc:
                self.last_error = str(exc)
            if self._up.is_set():
                return
            await asyncio.sleep(jittered(capped(attempt, initial=0.1, cap=2.0)))
            attempt += 1

    async def aclose(self) -> None:
        probe, self._probe = self._probe, None
        await cancel(probe)
        await self.transport.aclose()

    # -- requests -----------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        accept_text: bool = False,
        idempotent: bool,
        timeout: float | None = None,
    ) -> Reply:
        """Send with auth, map errors, retry transient failures where safe; 2xx or raise."""
        content = None if json is None else orjson.dumps(json)
        accept = TEXT if accept_text else JSON
        attempt = 0
        while True:
            try:
                return await self._send_authorized(
                    self._request(method, path, _clean(params), content, accept, timeout)
                )
            except ConductorError as exc:
                if not self._may_retry(exc, idempotent, attempt):
                    raise
                delay = self._delay(exc, attempt)
                log.debug("retrying %s %s in %.2fs after: %s", method, path, delay, exc)
                await asyncio.sleep(delay)
                attempt += 1

    def _may_retry(self, exc: ConductorError, idempotent: bool, attempt: int) -> bool:
        if attempt >= self.max_retries or not exc.retryable:
            return False
        return idempotent or never_sent(exc)

    def _delay(self, exc: ConductorError, attempt: int) -> float:
        delay = jittered(capped(attempt, initial=self.backoff_base, cap=self.backoff_cap))
        if isinstance(exc, Throttled) and exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, self.backoff_cap))
        return delay

    def _request(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        content: bytes | None,
        accept: str,
        timeout: float | None = None,
    ) -> Request:
        headers = {"Accept": accept}
        if content is not None:
            headers["Content-Type"] = JSON
        url = self.base_url + path
        return Request(method, url, params, headers, content, timeout or self.timeout)

    async def _send_authorized(self, request: Request) -> Reply:
        auth = await self._auth_headers()
        response = await self._send_once(request, auth)
        if self.auth is not None and is_token_error(response):
            await self.auth.refresh(auth.get(HEADER), self.post_token)
            response = await self._send_once(request, await self._auth_headers())
        raise_for_status(response)
        return response

    async def _auth_headers(self) -> dict[str, str]:
        if self.auth is None:
            return {}
        return await self.auth.headers(self.post_token)

    async def post_token(self, path: str, body: bytes) -> Reply:
        return await self._send_once(self._request("POST", path, None, body, JSON))

    async def _send_once(self, request: Request, auth: Mapping[str, str] | None = None) -> Reply:
        if auth:
            request = replace(request, headers={**request.headers, **auth})
        try:
            response = await self.transport.send(request)
        except ConductorUnavailable as exc:
            self._mark_down(str(exc))
            raise
        except ConductorTimeout:
            self._timeouts += 1
            if self._timeouts >= TIMEOUTS_DOWN:
                self._mark_down(f"{self._timeouts} requests in a row got no answer in time")
            raise
        self._timeouts = 0
        if response.status_code in DOWN_STATUSES:
            self._mark_down(f"HTTP {response.status_code}")
        else:
            self._mark_up()
        return response


def _clean(params: Mapping[str, Any] | None) -> dict[str, str] | None:
    """Query parameters without None values; booleans as Conductor spells them."""
    if not params:
        return None
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out

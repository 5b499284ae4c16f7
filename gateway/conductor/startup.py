"""What the daemon needs from Conductor before it can start: its capabilities, or why not.

With `conductor.flavor: auto` the flavor is probed, and a Conductor that cannot be reached (or
refuses the key) is retried by the caller rather than guessed: an `idempotencyKey` honoured by
Orkes and ignored by OSS changes what a duplicate start does, so the daemon never assumes.
"""

from __future__ import annotations

import asyncio
import re

from gateway.conductor.capabilities import Capabilities
from gateway.conductor.client import ConductorClient
from gateway.errors import ConductorError, ConductorUnavailable, Unauthorized
from gateway.settings import ConductorSettings

PROBE_SECONDS = 10.0  # the capability probe is a handful of requests
_REQUEST = re.compile(r"^[A-Z]+ \S+: ")


async def probe_capabilities(client: ConductorClient, settings: ConductorSettings) -> Capabilities:
    """The server's capabilities; ConductorUnavailable with the one-line cause otherwise."""
    try:
        async with asyncio.timeout(PROBE_SECONDS):
            return await client.capabilities()
    except (ConductorError, TimeoutError) as exc:
        raise ConductorUnavailable(unavailable_cause(exc, settings)) from None


def unavailable_cause(exc: BaseException | str | None, settings: ConductorSettings) -> str:
    """The one-line reason Conductor cannot be used, naming the setting to check.

    The single place that words Conductor's start-up failures (/readyz, the log)."""
    if isinstance(exc, TimeoutError):
        detail = f"no answer within {PROBE_SECONDS:g}s"
    elif exc is None:
        detail = "no answer yet"
    else:
        detail = (str(exc).splitlines() or [""])[0] or type(exc).__name__
        detail = _REQUEST.sub("", detail)  # the probe's request line says nothing to a reader
    if isinstance(exc, Unauthorized):
        return f"refused the key at {settings.url}: {detail}; check conductor.key_id/key_secret"
    return f"not reachable at {settings.url}: {detail}; check conductor.url"

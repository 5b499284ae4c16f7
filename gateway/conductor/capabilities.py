"""What this Conductor can do, probed once without creating or changing anything.

Every probe addresses a workflow id or name that cannot exist (a fresh random UUID), so a
server that has the endpoint answers "not found" about the *workflow*, and a server that lacks
it answers about the *route*: 405, a 404 naming a missing resource/handler, or (for the signal
path on OSS before v3.32, which falls into `POST /tasks/{wf}/{ref}/{status}` with the invalid
status "signal") a 500. Nothing is started, signalled or updated either way.

- flavor: Orkes if `/api/token` issued a token (or, with no key configured, if the Orkes-only
  variables endpoint exists); OSS otherwise. `conductor.flavor: oss|orkes` skips the probes.
- variables: the Orkes-only `POST /workflow/{id}/variables`.
- idempotency: claimed for Orkes only; OSS accepts `idempotencyKey` and ignores it (#1527).
- signal: `POST /tasks/{id}/{status}/signal` (OSS v3.32.0+, Orkes v5.1+).
- sync_execute: `POST /workflow/execute/{name}/{version}` (OSS v3.21.23+, Orkes v5).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from gateway.conductor.session import Session
from gateway.errors import ConductorError, TransientError

Flavor = Literal["oss", "orkes"]
_ROUTE_WORDS = ("static resource", "handler", "route", "endpoint", "request method")


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the connected Conductor supports."""

    flavor: Flavor
    variables: bool
    idempotency: bool
    signal: bool
    sync_execute: bool


def assumed(flavor: Flavor) -> Capabilities:
    """Capabilities implied by a configured flavor (current OSS or Orkes), without probing."""
    orkes = flavor == "orkes"
    return Capabilities(flavor, variables=orkes, idempotency=orkes, signal=True, sync_execute=True)


async def detect(session: Session) -> Capabilities:
    """Probe the server: flavor from the token endpoint or the variables route, then the rest."""
    variables = await _route_exists(session, "POST", f"/workflow/{_nonce()}/variables", {})
    flavor = await _flavor(session, variables)
    signal = await _route_exists(session, "POST", f"/tasks/{_nonce()}/COMPLETED/signal", {})
    execute = await _route_exists(
        session, "POST", f"/workflow/execute/{_nonce()}/0", {"name": "probe"}
    )
    orkes = flavor == "orkes"
    return Capabilities(
        flavor, variables=variables, idempotency=orkes, signal=signal, sync_execute=execute
    )


async def _flavor(session: Session, variables: bool) -> Flavor:
    auth = session.auth
    if auth is not None:
        if auth.token is None and not auth.disabled:
            await auth.headers(session.post_token)
        if auth.token is not None:
            return "orkes"
    return "orkes" if variables else "oss"


async def _route_exists(session: Session, method: str, path: str, body: object) -> bool:
    try:
        await session.request(method, path, json=body, idempotent=True)
    except TransientError:
        raise
    except ConductorError as exc:
        return not route_missing(exc)
    return True


def route_missing(exc: ConductorError) -> bool:
    """True when the error says the server has no such endpoint (rather than no such thing)."""
    if exc.status == 405:
        return True
    message = str(exc.body.get("message") or exc.body.get("error") or "").lower()
    if exc.status == 404:
        return (
            not message
            or message in ("not found", "404: not found")
            or any(word in message for word in _ROUTE_WORDS)
        )
    return exc.status == 500 and ("enum" in message or "convert" in message)


def _nonce() -> str:
    return f"gateway-probe-{uuid.uuid4()}"

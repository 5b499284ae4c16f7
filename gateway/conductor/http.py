"""Conductor's answers, read the way the REST contract says: status codes become the
`gateway.errors` tree (message built from Conductor's error body), text/plain ids are read as
text, and empty or 204 bodies are never parsed as JSON.

Whether a failed request may be retried depends on whether it can have reached Conductor:
`ConnectFailed` (connection refused or not opened in time) and `Throttled` (429, 503) never
did, so any operation may retry them; a read timeout, a reset after sending, 502, 504 or a
retryable 500 may have taken effect, so only idempotent operations retry those.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from gateway.errors import (
    BadRequest,
    ConductorError,
    ConductorUnavailable,
    Conflict,
    NotFound,
    ServerError,
    Unauthorized,
)

if TYPE_CHECKING:
    from gateway.conductor.wire import Reply


class ConnectFailed(ConductorUnavailable):
    """The connection could not be opened: the request certainly never reached Conductor."""


class Throttled(ConductorUnavailable):
    """429 or 503: Conductor (or its proxy) refused the request without running it."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


def never_sent(exc: ConductorError) -> bool:
    """True when the failed request cannot have had any effect on Conductor."""
    return isinstance(exc, ConnectFailed | Throttled)


def error_body(response: Reply) -> dict[str, Any]:
    """Conductor's error body as a dict; {} when it is empty or not a JSON object."""
    if not response.content:
        return {}
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return {"message": response.text[:500]}
    return data if isinstance(data, dict) else {"message": str(data)[:500]}


def describe(method: str, url: str, status: int, body: dict[str, Any]) -> str:
    """`PUT /api/workflow/x/pause: 409 Workflow x has ended ...` plus validation details."""
    message = str(body.get("message") or body.get("error") or "no message")
    details = [
        f"{item.get('path')}: {item.get('message')}"
        for item in body.get("validationErrors") or []
        if isinstance(item, dict)
    ]
    if details:
        message += " (" + "; ".join(details) + ")"
    message = " ".join(message.split())  # one line, whatever the server sent
    return f"{method} {url}: {status} {message}"


def raise_for_status(response: Reply) -> None:
    """Raise the ConductorError subclass for a non-2xx response; return for 2xx."""
    status = response.status_code
    if status < 400:
        return
    method, url = response.method, response.path
    body = error_body(response)
    message = describe(method, url, status, body)
    if status in (429, 503):
        raise Throttled(message, status=status, body=body, retry_after=_retry_after(response))
    raise _error_class(status, body)(
        message, status=status, body=body, retryable=_retryable(status, body)
    )


def _error_class(status: int, body: dict[str, Any]) -> type[ConductorError]:
    if status in (401, 403):
        return Unauthorized
    if status in (404, 405):  # 405: the server has no such endpoint for this method
        return NotFound
    if status == 409:
        return Conflict
    if status in (502, 504):
        return ConductorUnavailable
    if status >= 500:
        return ServerError
    return BadRequest


def _retryable(status: int, body: dict[str, Any]) -> bool | None:
    if status in (502, 504):
        return True
    if status >= 500:
        return bool(body.get("retryable", False))
    return None


def _retry_after(response: Reply) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def text_id(response: Reply) -> str | None:
    """A text/plain id (start, rerun, task update); None for an empty 200 body."""
    text = response.text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':  # tolerate a JSON-quoted string
        text = text[1:-1]
    return text or None


def json_body(response: Reply) -> Any:
    """The JSON body; None for 204 or an empty body (never response.json() on those)."""
    if response.status_code == 204 or not response.content.strip():
        return None
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise ServerError(
            f"{response.method} {response.path}: "
            f"{response.status_code} answer is not JSON: {response.text[:200]!r}",
            status=response.status_code,
        ) from exc

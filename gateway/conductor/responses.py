"""Conductor's answers, read the way the REST contract says: status codes become the
`gateway.errors` tree (message built from Conductor's error body), text/plain ids are read as
text, and empty or 204 bodies are never parsed as JSON.

Whether a failed request may be retried depends on whether it can have reached Conductor:
`ConnectFailed` (connection refused or not opened in time) and `Throttled` (429, and a 503 that
carries Retry-After or Conductor's own JSON error body) never did, so any operation may retry
them; a read timeout, 408, a reset after sending, 502, 504, a bare 503 (a proxy such as Envoy
answers 503 also when the upstream reset after the request was forwarded) or a retryable 500
may have taken effect, so only idempotent operations retry those.

Redirects are never followed (neither transport follows them): a 3xx is an error that names the
Location, because a proxy redirecting POSTs would otherwise turn an HTML page into a workflow id.
"""

from __future__ import annotations

import email.utils
import time
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from gateway.errors import (
    BadRequest,
    ConductorError,
    ConductorTimeout,
    ConductorUnavailable,
    Conflict,
    NotFound,
    ServerError,
    Unauthorized,
)

if TYPE_CHECKING:
    from gateway.conductor.transport import Reply


class ConnectFailed(ConductorUnavailable):
    """The connection could not be opened: the request certainly never reached Conductor."""


class Throttled(ConductorUnavailable):
    """429 or 503: Conductor (or its proxy) refused the request without running it."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class Redirected(BadRequest):
    """3xx: Conductor's API does not redirect; the configured URL points at something else."""


M = TypeVar("M", bound=BaseModel)


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
    if status < 300:
        return
    if status < 400:
        raise redirected(response)
    method, url = response.method, response.path
    body = error_body(response)
    message = describe(method, url, status, body)
    retry_after = _retry_after(response)
    if status == 429 or (status == 503 and (retry_after is not None or _conductor_said(body))):
        raise Throttled(message, status=status, body=body, retry_after=retry_after)
    raise _error_class(status, body)(
        message, status=status, body=body, retryable=_retryable(status, body)
    )


def redirected(response: Reply) -> Redirected:
    """The error for a 3xx answer: its status, where it points, and the fix."""
    location = response.headers.get("location") or "(no Location header)"
    location = location.split("?", 1)[0]  # the query may carry user text
    return Redirected(
        f"{response.method} {response.path}: {response.status_code} redirect to {location}; "
        "redirects are not followed: set conductor.url to the final URL (scheme, host and "
        "path, ending in /api)",
        status=response.status_code,
        retryable=False,
    )


def _conductor_said(body: dict[str, Any]) -> bool:
    # Conductor's own error body is JSON {status, message}; error_body() gives a non-JSON
    # body (a proxy's text page) only a "message", so "status" tells the two apart.
    return "status" in body and "message" in body


def _error_class(status: int, body: dict[str, Any]) -> type[ConductorError]:
    if status == 408:  # the server gave up waiting for us; the request may have been read
        return ConductorTimeout
    if status in (401, 403):
        return Unauthorized
    if status in (404, 405):  # 405: the server has no such endpoint for this method
        return NotFound
    if status == 409:
        return Conflict
    if status in (502, 503, 504):
        return ConductorUnavailable
    if status >= 500:
        return ServerError
    return BadRequest


def _retryable(status: int, body: dict[str, Any]) -> bool | None:
    if status in (408, 502, 503, 504):
        return True
    if status >= 500:
        return bool(body.get("retryable", False))
    return None


def _retry_after(response: Reply) -> float | None:
    """Retry-After in seconds, given as delay-seconds or as an HTTP date (RFC 9110 10.2.3)."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())  # naive dates are read as UTC


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
            f"{response.status_code} unexpected answer, not JSON: {response.text[:200]!r}",
            status=response.status_code,
        ) from exc


def read_model(response: Reply, model: type[M], *, empty: Any = None) -> M:
    """The JSON body as `model`; `empty` stands in for an empty body (None: not allowed)."""
    data = json_body(response)
    return validated(response, model, empty if data is None else data)


def read_models(response: Reply, model: type[M]) -> list[M]:
    """The JSON body as a list of `model`; an empty body is an empty list."""
    data = json_body(response)
    if data is None:
        return []
    if not isinstance(data, list):
        raise _unexpected(response, f"list of {model.__name__}", f"got {type(data).__name__}")
    return [validated(response, model, item) for item in data]


def validated(response: Reply, model: type[M], data: Any) -> M:
    """`data` (from `response`) as `model`; a mismatch is a ServerError, not pydantic's."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]  # no payload in messages
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise _unexpected(
            response, model.__name__, f"{where}: {first['msg']} ({exc.error_count()} error(s))"
        ) from exc


def _unexpected(response: Reply, expected: str, problem: str) -> ServerError:
    return ServerError(
        f"{response.method} {response.path}: {response.status_code} unexpected answer, not a "
        f"{expected}: {problem}; is conductor.url a Conductor server?",
        status=response.status_code,
    )

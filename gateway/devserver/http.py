"""HTTP plumbing shared by the route modules: Conductor's response shapes and error mapping.

Conductor's ApplicationExceptionMapper maps by exact exception class (§1.2): 404, 409 and 400
for NotFound, Conflict and IllegalArgument; everything else, malformed JSON included, is 500.
The body is `{status, message, instance, retryable}` with nulls omitted; bean-validation errors
are 400 with `validationErrors` and no `instance`; Orkes's 401 carries the token error `code`.
Every error body the dev server sends is built here.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from gateway.devserver.auth import AuthError, TokenIssuer
from gateway.errors import BadRequest, ConductorError, ServerError

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)
INSTANCE = socket.gethostname()
AUTH_KEY: web.AppKey[TokenIssuer | None] = web.AppKey("auth")


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def text_response(text: str | None) -> web.Response:
    """A bare id as text/plain (Spring's exact header); a null String is 200 with an empty
    body and, like Spring's, no content type at all (§1.1)."""
    if not text:
        return empty()
    return web.Response(text=text, headers={"Content-Type": "text/plain;charset=UTF-8"})


def empty() -> web.Response:
    return web.Response(status=200)


def no_content() -> web.Response:
    return web.Response(status=204)


def error_body(status: int, message: str, retryable: bool = False) -> dict[str, Any]:
    return {"status": status, "message": message, "instance": INSTANCE, "retryable": retryable}


def validation_failed(items: list[dict[str, str]]) -> BadRequest:
    """A bean-validation failure: 400 with Conductor's `validationErrors` (path, message and,
    for a value that was given, invalidValue)."""
    return BadRequest(
        "Validation failed, check below errors for detail.",
        status=400,
        body={"validationErrors": items},
    )


def validation_error(path: str, message: str, invalid: Any = None) -> BadRequest:
    """One `validationErrors` item (no invalidValue for a null value, as Conductor's mapper
    leaves it out)."""
    item = {"path": path, "message": message}
    if invalid is not None:
        item["invalidValue"] = str(invalid)
    return validation_failed([item])


def _error_response(exc: ConductorError) -> web.Response:
    status = exc.status or 500
    if "validationErrors" in exc.body:
        body = {"status": status, "message": exc.message, "retryable": False, **exc.body}
        return json_response(body, status)
    return json_response(error_body(status, exc.message, exc.retryable), status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ConductorError as exc:
        return _error_response(exc)
    except AuthError as exc:  # the code tells the SDKs to fetch a new token (§1.1)
        body = {"error": exc.code, "message": exc.message, "status": 401, "retryable": False}
        return json_response(body, 401)
    except web.HTTPMethodNotAllowed:
        return json_response(
            error_body(405, f"Request method '{request.method}' is not supported"), 405
        )
    except web.HTTPNotFound:
        return json_response(error_body(404, f"No static resource {request.path[1:]}."), 404)
    except web.HTTPException as exc:  # e.g. 413 for a body over the size limit
        return json_response(error_body(exc.status, exc.reason), exc.status)
    except Exception as exc:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_response(error_body(500, f"{type(exc).__name__}: {exc}"), 500)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    auth = request.app[AUTH_KEY]
    if auth is not None and request.path != "/api/token":
        auth.check(request.headers.get("X-Authorization"))  # AuthError: errors_middleware
    return await handler(request)


async def read_json(request: web.Request, required: bool = True) -> Any:
    raw = await request.read()
    if not raw.strip():
        if required:
            raise ServerError("Required request body is missing", status=500)
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ServerError(f"JSON parse error: {exc}", status=500) from exc


def _wrong_kind(expected: str, data: Any) -> ServerError:
    """Jackson cannot bind the body to the parameter's type: HttpMessageNotReadableException,
    which OSS maps to 500 (§1.2), not 400."""
    got = "Array" if isinstance(data, list) else "Object" if isinstance(data, dict) else "scalar"
    return ServerError(
        f"JSON parse error: Cannot deserialize value of type `{expected}` from {got} value",
        status=500,
    )


async def read_object(request: web.Request, required: bool = True) -> dict[str, Any]:
    data = await read_json(request, required)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise _wrong_kind("java.util.LinkedHashMap<java.lang.String,java.lang.Object>", data)
    return data


async def read_array(request: web.Request) -> list[Any]:
    """A required JSON array body (`List<String>` parameters); `null` reads as empty."""
    data = await read_json(request)
    if data is None:
        return []
    if not isinstance(data, list):
        raise _wrong_kind("java.util.ArrayList<java.lang.String>", data)
    return data


def parse_model(model: type[M], data: Any, where: str) -> M:
    """Validate at the edge: pydantic errors become Conductor's 400 validationErrors body."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        items: list[dict[str, str]] = []
        for err in exc.errors():
            item = {
                "path": ".".join([where, *(str(p) for p in err["loc"])]),
                # A model-level rule (e.g. TaskTimeoutConstraint) reads like Conductor's own
                # message, without pydantic's "Value error, " prefix and without a value.
                "message": err["msg"].removeprefix("Value error, "),
            }
            if err["loc"]:
                item["invalidValue"] = str(err.get("input"))
            items.append(item)
        raise validation_failed(items) from exc


def query_bool(request: web.Request, name: str, default: bool) -> bool:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    lowered = value.lower()
    if lowered in ("true", "on", "yes", "1"):
        return True
    if lowered in ("false", "off", "no", "0"):
        return False
    raise ServerError(f"Invalid boolean value [{value}] for parameter {name}", status=500)


def query_int(request: web.Request, name: str, default: int | None) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ServerError(
            f"Failed to convert value of type 'java.lang.String' to required type 'int'; "
            f'For input string: "{value}" (parameter {name})',
            status=500,
        ) from exc


def query_str(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    return value if value else None

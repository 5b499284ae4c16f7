"""HTTP (http-task/HttpTask): call `http_request` (or the flat input) with aiohttp.

As in Conductor the call runs off the decide (an async system task): the task stays SCHEDULED
until the answer comes, a retry waits for its delay first, and a PAUSED workflow's calls still
go out. A 2xx answer completes the task with `output.response` = {body, headers, statusCode,
reasonPhrase}: headers as name -> list of values, a JSON body parsed (numbers as floats, as
Jackson's Double), any other body as text. A 429 or 503 is asked again once (as the real
server's HTTP client does); a 4xx/5xx answer or a connection error fails the task (so its
retry policy applies) with Conductor's reason, and `output.response` is then the
exception text, as RestTemplate's exception makes it on the real server.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import aiohttp

from gateway.devserver.models import WorkflowTask
from gateway.devserver.tasks.base import Problem, Runtime, TaskHandler, required
from gateway.devserver.tasks.later import end_task

if TYPE_CHECKING:
    from gateway.devserver.state import TaskRecord, WorkflowRecord

_NO_URI = "Missing HTTP URI.  See documentation for HttpTask for required input parameters"
# Calls in flight by task id, so that cancelling the task (the workflow ended) cancels them.
_IN_FLIGHT: dict[str, asyncio.Task[None]] = {}
_ASKED_AGAIN = frozenset({429, 503})


class HttpError(Exception):
    """What RestTemplate would throw: its message is the task's reason."""


class Http(TaskHandler):
    type = "HTTP"
    own_task_id = True
    input_template = True
    is_async = True

    def validate(self, wt: WorkflowTask, path: str) -> list[Problem]:
        # WorkflowTaskTypeConstraint.isHttpTaskValid
        params = wt.input_parameters
        template = wt.task_definition.input_template if wt.task_definition else {}
        if {"http_request", "uri", "method"} & params.keys() or "http_request" in template:
            return []
        return [required(wt, path, "inputParameters.http_request or inputParameters.uri")]

    def start(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> None:
        request = task.input_data.get("http_request")
        spec: dict[str, Any] = request if isinstance(request, dict) else task.input_data
        if spec.get("uri") is None:
            rt.finish(task, "FAILED", _NO_URI)
            return
        if spec.get("method") is None:
            rt.finish(task, "FAILED", "No HTTP method specified")
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            rt.finish(task, "FAILED", "HTTP tasks run only inside the dev server's event loop")
            return
        delay = max(0, task.available_at - rt.store.now()) / 1000
        call = loop.create_task(self._run(rt, wf, task, spec, delay))
        _IN_FLIGHT[task.task_id] = call
        call.add_done_callback(lambda _: _IN_FLIGHT.pop(task.task_id, None))

    def cancel(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> None:
        call = _IN_FLIGHT.pop(task.task_id, None)
        if call is not None:
            call.cancel()

    async def _run(
        self,
        rt: Runtime,
        wf: WorkflowRecord,
        task: TaskRecord,
        spec: dict[str, Any],
        delay: float,
    ) -> None:
        if delay:
            await asyncio.sleep(delay)  # a retry's delay (DeciderService.retry)
        try:
            response = await call(spec)
        except HttpError as exc:
            reason = f"Failed to invoke HTTP task due to: java.lang.Exception: {exc}"
            end_task(rt, wf, task, "FAILED", {"response": f"java.lang.Exception: {exc}"}, reason)
            return
        end_task(rt, wf, task, "COMPLETED", {"response": response})


async def call(spec: dict[str, Any]) -> dict[str, Any]:
    """One request as HttpTask.httpCall makes it; HttpError for a non-2xx answer or an I/O
    error, with RestTemplate's message. A 429 or 503 is asked again once, after its
    Retry-After or 1 s: the real server's Apache HttpClient 5 does that by default
    (DefaultHttpRequestRetryStrategy), before the task sees an answer."""
    method, uri = str(spec["method"]), str(spec["uri"])
    status, text, headers = await _exchange(spec, method, uri)
    if status in _ASKED_AGAIN:
        await asyncio.sleep(_retry_after(headers))
        status, text, headers = await _exchange(spec, method, uri)
    phrase = _phrase(status)
    if status >= 400:
        shown = f'"{text}"' if text else "[no body]"  # Spring's HttpStatusCodeException
        raise HttpError(f'{status} {phrase} on {method} request for "{uri}": {shown}')
    return {
        "body": _parsed(text) if 200 <= status < 300 and text else None,
        "headers": headers,
        "statusCode": status,
        "reasonPhrase": phrase,
    }


async def _exchange(
    spec: dict[str, Any], method: str, uri: str
) -> tuple[int, str, dict[str, list[str]]]:
    timeout = aiohttp.ClientTimeout(
        sock_connect=_millis(spec.get("connectionTimeOut")),
        sock_read=_millis(spec.get("readTimeOut")),
    )
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(
                method, uri, headers=_headers(spec), data=_body(spec.get("body"))
            ) as answer,
        ):
            text = await answer.text()
            headers: dict[str, list[str]] = {}
            for name, value in answer.headers.items():
                headers.setdefault(str(name), []).append(str(value))  # istr -> str
            return answer.status, text, headers
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        reason = str(exc) or type(exc).__name__
        raise HttpError(f'I/O error on {method} request for "{uri}": {reason}') from None


def _retry_after(headers: dict[str, list[str]]) -> float:
    """Seconds to wait before asking again: Retry-After in seconds or as an HTTP date, else
    HttpClient's default of 1 s."""
    value = next((v[0] for k, v in headers.items() if k.lower() == "retry-after" and v), "")
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 1.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _millis(value: Any) -> float:
    return (int(value) if value is not None else 3000) / 1000  # HttpTask.Input's 3000 ms


def _headers(spec: dict[str, Any]) -> dict[str, str]:
    accept = spec.get("accept") or "application/json"
    headers = {
        "Content-Type": str(spec.get("contentType") or "application/json"),
        "Accept": ", ".join(accept) if isinstance(accept, list) else str(accept),
    }
    extra = spec.get("headers") or {}
    headers.update({str(k): str(v) for k, v in extra.items() if v is not None})
    return headers


def _body(body: Any) -> bytes | None:
    # A text body is sent as it is (StringHttpMessageConverter); anything else as JSON.
    if body is None:
        return None
    return body.encode() if isinstance(body, str) else json.dumps(body).encode()


def _parsed(text: str) -> Any:
    """HttpTask.extractBody: objects and lists as they are, numbers as doubles, other JSON
    scalars as text, and a body that is not JSON as the raw text."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, dict | list):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return float(value)
    return "null" if value is None else value


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""

"""Injected faults (httpx.MockTransport): what is retried, what is not, and token refresh.

The transport is the only fake here; everything above it (session, retries, auth, error
mapping) is the production code. Behaviour against a real server is in test_integration.py.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from gateway.conductor import ConductorClient
from gateway.conductor.auth import EARLY, HEADER, MIN_REFRESH, Send, TokenAuth
from gateway.conductor.responses import ConnectFailed, Redirected, Throttled, raise_for_status
from gateway.conductor.transport import Reply
from gateway.errors import (
    BadRequest,
    ConductorTimeout,
    ConductorUnavailable,
    Conflict,
    NotFound,
    ServerError,
    Unauthorized,
)

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


class Recorder:
    """Records requests (readiness probes apart) and answers with the handler under test."""

    def __init__(self, handler: Handler, *, probes_too: bool = False) -> None:
        self.handler = handler
        self.probes_too = probes_too  # False: probes get a 404 and leave the handler alone
        self.calls: list[httpx.Request] = []
        self.probes: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if "readiness_probe" in request.url.path:
            self.probes.append(request)
            if not self.probes_too:
                return error(404, "No such taskType found by name")
        else:
            self.calls.append(request)
        return await self.handler(request)

    def count(self, path_suffix: str) -> int:
        return sum(1 for r in self.calls if r.url.path.endswith(path_suffix))


def client_for(recorder: Recorder, **kw: Any) -> ConductorClient:
    kw.setdefault("max_retries", 3)
    kw.setdefault("flavor", "oss")
    return ConductorClient(
        "http://conductor.test/api",
        transport=httpx.MockTransport(recorder),
        backoff_base=0.001,
        backoff_cap=0.01,
        **kw,
    )


def error(status: int, message: str, **extra: Any) -> httpx.Response:
    return httpx.Response(status, json={"status": status, "message": message, **extra})


def sequence(*answers: httpx.Response | Exception) -> Handler:
    """Answer with each item in turn (raising exceptions), then repeat the last one."""
    items = list(answers)

    async def handler(request: httpx.Request) -> httpx.Response:
        item = items.pop(0) if len(items) > 1 else items[0]
        if isinstance(item, Exception):
            raise item
        return item

    return handler


WORKFLOW = {"workflowId": "wf-1", "status": "RUNNING", "unknownField": {"x": 1}}


# -- status codes --------------------------------------------------------------------------


async def test_non_retryable_500_is_not_retried() -> None:
    rec = Recorder(sequence(error(500, "boom", retryable=False)))
    async with client_for(rec) as c:
        with pytest.raises(ServerError, match="boom") as info:
            await c.get_workflow("wf-1")
    assert info.value.status == 500 and info.value.retryable is False
    assert len(rec.calls) == 1


async def test_retryable_500_is_retried_for_reads() -> None:
    rec = Recorder(sequence(error(500, "busy", retryable=True), httpx.Response(200, json=WORKFLOW)))
    async with client_for(rec) as c:
        wf = await c.get_workflow("wf-1")
    assert wf.workflow_id == "wf-1" and len(rec.calls) == 2


async def test_503_and_429_are_retried_even_for_a_start() -> None:
    rec = Recorder(
        sequence(
            error(503, "unavailable"),
            httpx.Response(429, headers={"Retry-After": "0"}, json={"message": "slow down"}),
            httpx.Response(200, text="wf-new", headers={"content-type": "text/plain"}),
        )
    )
    async with client_for(rec) as c:
        assert await c.start_workflow("flow") == "wf-new"
    assert len(rec.calls) == 3


async def test_retries_stop_after_max_retries() -> None:
    rec = Recorder(sequence(error(503, "down")))
    async with client_for(rec, max_retries=2) as c:
        with pytest.raises(ConductorUnavailable, match="503 down"):
            await c.get_workflow("wf-1")
    assert len(rec.calls) == 3  # the first try and two retries


async def test_502_after_a_start_is_not_retried() -> None:
    rec = Recorder(sequence(error(502, "bad gateway")))
    async with client_for(rec) as c:
        with pytest.raises(ConductorUnavailable):
            await c.start_workflow("flow")
    assert len(rec.calls) == 1  # the start may have happened: the caller's dedupe decides


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequest),
        (401, Unauthorized),
        (403, Unauthorized),
        (404, NotFound),
        (405, NotFound),
        (409, Conflict),
    ],
)
async def test_client_errors_map_to_the_tree_and_are_not_retried(status: int, cls: type) -> None:
    rec = Recorder(sequence(error(status, "nope")))
    async with client_for(rec) as c:
        with pytest.raises(cls, match=f"PUT /api/workflow/wf-1/pause: {status} nope"):
            await c.pause("wf-1")
    assert len(rec.calls) == 1


async def test_validation_errors_are_in_the_message() -> None:
    body = {
        "status": 400,
        "message": "Validation failed, check below errors for detail.",
        "validationErrors": [{"path": "startWorkflow.priority", "message": "99 is the max"}],
    }
    rec = Recorder(sequence(httpx.Response(400, json=body)))
    async with client_for(rec) as c:
        with pytest.raises(BadRequest, match=r"startWorkflow\.priority: 99 is the max"):
            await c.start_workflow("flow")


# -- transport failures ------------------------------------------------------------------------


async def test_timeout_is_retried_for_a_read_but_not_for_a_start() -> None:
    timeout = httpx.ReadTimeout("slow")
    rec = Recorder(sequence(timeout, httpx.Response(200, json=WORKFLOW)))
    async with client_for(rec) as c:
        assert (await c.get_workflow("wf-1")).status == "RUNNING"
        assert len(rec.calls) == 2
        rec.handler = sequence(timeout, httpx.Response(200, text="wf-2"))
        with pytest.raises(ConductorTimeout, match="may or may not have taken effect"):
            await c.start_workflow("flow")
    assert rec.count("/api/workflow") == 1


async def test_connection_reset_is_retried_only_for_idempotent_operations() -> None:
    reset = httpx.ReadError("[Errno 104] Connection reset by peer")
    rec = Recorder(sequence(reset, httpx.Response(200)))
    async with client_for(rec) as c:
        await c.pause("wf-1")  # idempotent: pausing twice is a no-op
        assert len(rec.calls) == 2
        rec.handler = sequence(reset, httpx.Response(204))
        with pytest.raises(ConductorUnavailable, match="connection failed"):
            await c.retry("wf-1")  # a second retry could act on the retried run
    assert rec.count("/retry") == 1


async def test_refused_connection_is_retried_for_any_operation() -> None:
    rec = Recorder(sequence(httpx.ConnectError("refused"), httpx.Response(200, text="wf-3")))
    async with client_for(rec) as c:
        assert await c.start_workflow("flow") == "wf-3"
    assert len(rec.calls) == 2


async def test_a_start_with_an_enforced_idempotency_key_is_retried_after_a_timeout() -> None:
    rec = Recorder(sequence(httpx.ReadTimeout("slow"), httpx.Response(200, text="wf-4")))
    async with client_for(rec, flavor="orkes") as c:
        wf_id = await c.start_workflow(
            "flow", idempotency_key="k1", idempotency_strategy="RETURN_EXISTING"
        )
    assert wf_id == "wf-4" and len(rec.calls) == 2
    body = json.loads(rec.calls[-1].content)
    assert body["idempotencyKey"] == "k1" and body["idempotencyStrategy"] == "RETURN_EXISTING"


async def test_idempotency_fields_are_sent_only_when_given() -> None:
    rec = Recorder(sequence(httpx.Response(200, text="wf-5")))
    async with client_for(rec) as c:
        await c.start_workflow("flow", input={"a": None}, correlation_id=None)
    body = json.loads(rec.calls[0].content)
    assert body == {"name": "flow", "input": {"a": None}}
    assert rec.calls[0].headers["accept"].startswith("text/plain")


# -- bodies ------------------------------------------------------------------------------------


async def test_empty_and_204_answers_are_not_parsed_as_json() -> None:
    rec = Recorder(sequence(httpx.Response(204)))
    async with client_for(rec) as c:
        await c.retry("wf-1")
        await c.restart("wf-1")
        rec.handler = sequence(httpx.Response(200, content=b""))
        await c.terminate("wf-1", reason="stop")
        assert await c.signal("wf-1", "COMPLETED", {"ok": True}, task_ref="wait") is None
        assert await c.poll_task("worker_task") is None
    assert rec.calls[2].url.params["reason"] == "stop"


async def test_execute_206_is_a_timed_out_wait() -> None:
    run = {"workflowId": "wf-6", "status": "RUNNING", "signalTimeout": False}
    rec = Recorder(sequence(httpx.Response(206, json=run)))
    async with client_for(rec) as c:
        result = await c.execute_workflow("flow", wait_for_seconds=1)
    assert result.signal_timeout is True and result.workflow_id == "wf-6"
    assert rec.calls[0].url.path == "/api/workflow/execute/flow/0"


async def test_path_segments_are_escaped() -> None:
    rec = Recorder(sequence(httpx.Response(200, json=[])))
    async with client_for(rec) as c:
        await c.get_by_correlation_id("a/b", "x y/../z")
    assert rec.calls[0].url.raw_path.startswith(b"/api/workflow/a%2Fb/correlated/x%20y%2F..%2Fz")


# -- readiness ---------------------------------------------------------------------------------


async def test_readiness_flips_on_connection_failure_and_back() -> None:
    healthy = False

    async def handler(request: httpx.Request) -> httpx.Response:
        if not healthy:
            raise httpx.ConnectError("refused")
        return httpx.Response(404, json={"message": "No such taskType"})

    rec = Recorder(handler, probes_too=True)
    async with client_for(rec, max_retries=0) as c:
        assert c.ready is False  # nothing answered yet
        with pytest.raises(ConnectFailed):
            await c.get_workflow("wf-1")
        assert c.ready is False
        healthy = True
        await asyncio.wait_for(c.wait_ready(), 5)
        assert c.ready is True
        healthy = False
        with pytest.raises(ConnectFailed):
            await c.pause("wf-1")
        assert c.ready is False
        healthy = True
        await asyncio.wait_for(c.wait_ready(), 5)
    assert rec.probes  # readiness came back through the background probe


# -- auth --------------------------------------------------------------------------------------


def jwt(exp: float | None) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    claims = {"sub": "app"} if exp is None else {"sub": "app", "exp": int(exp)}
    return f"{part({'alg': 'HS256'})}.{part(claims)}.sig"


class FakeOrkes:
    """Issues numbered tokens; rejects requests carrying a token it has expired."""

    def __init__(self, lifetime: float = 3600) -> None:
        self.issued = 0
        self.lifetime = lifetime
        self.expired: set[str] = set()
        self.valid: str | None = None

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/token":
            await asyncio.sleep(0.01)  # long enough for concurrent callers to pile up
            self.issued += 1
            self.valid = jwt(time.time() + self.lifetime) + str(self.issued)
            return httpx.Response(200, json={"token": self.valid})
        token = request.headers.get("x-authorization")
        if token in self.expired or token is None:
            return httpx.Response(401, json={"error": "EXPIRED_TOKEN"})
        return httpx.Response(200, json=WORKFLOW)


async def test_twenty_concurrent_calls_fetch_one_token() -> None:
    server = FakeOrkes()
    rec = Recorder(server)
    async with client_for(rec, key_id="app", key_secret="s3cr3t-value") as c:
        await asyncio.gather(*(c.get_workflow("wf-1") for _ in range(20)))
        assert server.issued == 1 and c.token_refreshes == 1
        # Conductor expires the token: every in-flight call gets 401, one refresh serves all.
        server.expired.add(server.valid or "")
        await asyncio.gather(*(c.get_workflow("wf-1") for _ in range(20)))
    assert server.issued == 2 and c.token_refreshes == 2


async def test_401_expired_retries_once_then_gives_up() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/token":
            return httpx.Response(200, json={"token": jwt(None)})
        return httpx.Response(401, json={"error": "INVALID_TOKEN", "message": "bad token"})

    rec = Recorder(handler)
    async with client_for(rec, key_id="app", key_secret="s3cr3t-value") as c:
        with pytest.raises(Unauthorized):
            await c.get_workflow("wf-1")
    assert rec.count("/token") == 2 and rec.count("/wf-1") == 2


class Clock:
    """Monotonic and wall time that only move when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1_700_000_000.0 + self.now


def token_server(clock: Clock, lifetime: float) -> tuple[list[int], Send]:
    """A token endpoint issuing JWTs that expire `lifetime` seconds from the fake wall time."""
    issued: list[int] = []

    async def send(path: str, body: bytes) -> Reply:
        await asyncio.sleep(0.01)  # long enough for concurrent callers to pile up
        issued.append(1)
        token = jwt(clock.time() + lifetime) + str(len(issued))
        return Reply(200, {}, json.dumps({"token": token}).encode(), "POST", "/api/token")

    return issued, send


async def test_token_is_refreshed_before_jwt_expiry() -> None:
    clock = Clock()
    issued, send = token_server(clock, lifetime=30)  # shorter than twice the 60 s margin
    auth = TokenAuth("app", SecretStr("s3cr3t-value"), clock=clock.monotonic, wall=clock.time)
    first = await asyncio.gather(*(auth.headers(send) for _ in range(50)))
    assert len(issued) == 1 and len({h[HEADER] for h in first}) == 1
    clock.now += 20  # inside the window (90% of 30 s): the token is reused
    await asyncio.gather(*(auth.headers(send) for _ in range(50)))
    assert len(issued) == 1
    clock.now += 8  # past 27 s: exactly one refresh for all 50 callers
    second = await asyncio.gather(*(auth.headers(send) for _ in range(50)))
    assert len(issued) == 2 and {h[HEADER] for h in second} == {auth.token}
    assert auth.token != first[0][HEADER]


async def test_a_nearly_expired_token_is_not_refetched_on_every_call() -> None:
    clock = Clock()
    issued, send = token_server(clock, lifetime=0)  # the server hands out an expired token
    auth = TokenAuth("app", SecretStr("s3cr3t-value"), clock=clock.monotonic, wall=clock.time)
    for _ in range(10):
        await auth.headers(send)
    assert len(issued) == 1  # reused for MIN_REFRESH seconds; a 401 would refresh it sooner
    clock.now += MIN_REFRESH
    await asyncio.gather(*(auth.headers(send) for _ in range(10)))
    assert len(issued) == 2


async def test_a_long_lived_token_is_refreshed_a_minute_before_expiry() -> None:
    clock = Clock()
    issued, send = token_server(clock, lifetime=3600)
    auth = TokenAuth("app", SecretStr("s3cr3t-value"), clock=clock.monotonic, wall=clock.time)
    await auth.headers(send)
    clock.now += 3600 - EARLY - 1
    await auth.headers(send)
    assert len(issued) == 1
    clock.now += 2
    await auth.headers(send)
    assert len(issued) == 2


async def test_token_404_means_oss_without_auth() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/token":
            return error(404, "No static resource api/token.")
        assert "x-authorization" not in request.headers
        return httpx.Response(200, json=WORKFLOW)

    rec = Recorder(handler)
    async with client_for(rec, key_id="app", key_secret="s3cr3t-value") as c:
        await c.get_workflow("wf-1")
        await c.get_workflow("wf-1")
    assert rec.count("/token") == 1


async def test_the_secret_is_never_in_urls_headers_or_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/token":
            return httpx.Response(401, json={"message": "bad key"})
        return httpx.Response(200, json=WORKFLOW)

    rec = Recorder(handler)
    async with client_for(rec, key_id="app", key_secret="s3cr3t-value") as c:
        with pytest.raises(Unauthorized) as info:
            await c.get_workflow("wf-1")
    assert "s3cr3t" not in str(info.value) and "s3cr3t" not in caplog.text
    for request in rec.calls:
        assert "s3cr3t" not in str(request.url)
        assert all("s3cr3t" not in v for v in request.headers.values())
    assert b"s3cr3t-value" in rec.calls[0].content  # only in the token request's body


# -- capability probes -------------------------------------------------------------------------


async def test_probes_recognise_an_older_oss_server() -> None:
    async def old_oss(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/signal"):  # falls into /tasks/{wf}/{ref}/{status} with status=signal
            return error(500, "No enum constant TaskResult.Status.signal")
        if "/execute/" in path or path.endswith(("/variables", "/token")):
            return error(404, f"No static resource {path[1:]}.")
        return error(404, "unexpected")

    rec = Recorder(old_oss)
    async with client_for(rec, flavor="auto") as c:
        caps, again = await asyncio.gather(c.capabilities(), c.capabilities())
    assert caps is again
    assert (caps.flavor, caps.variables, caps.idempotency) == ("oss", False, False)
    assert (caps.signal, caps.sync_execute) == (False, False)
    assert len(rec.calls) == 3  # probed once; nothing but the three probes was sent
    assert all("gateway-probe-" in r.url.path for r in rec.calls)


async def test_configured_flavor_skips_the_probes() -> None:
    rec = Recorder(sequence(error(500, "must not be called")))
    async with client_for(rec, flavor="orkes") as c:
        caps = await c.capabilities()
    assert caps.flavor == "orkes" and caps.variables and caps.idempotency
    assert rec.calls == []


# -- redirects, odd answers, ambiguous statuses (review findings) --------------------------


def redirect(status: int, location: str) -> httpx.Response:
    return httpx.Response(status, headers={"Location": location}, text="<html>moved</html>")


async def test_a_redirect_is_an_error_naming_the_location_and_the_fix() -> None:
    rec = Recorder(sequence(redirect(302, "https://conductor.example/api/workflow/wf-1/pause")))
    async with client_for(rec) as c:
        with pytest.raises(Redirected, match=r"302.*https://conductor\.example/api") as info:
            await c.pause("wf-1")
        assert "set conductor.url to the final URL" in str(info.value)
        assert isinstance(info.value, BadRequest) and not info.value.retryable
        rec.handler = sequence(redirect(308, "https://conductor.example/api/workflow"))
        with pytest.raises(Redirected, match="308"):
            await c.start_workflow("flow")  # used to return the HTML page as a workflow id
    assert len(rec.calls) == 2  # neither was retried


@pytest.mark.parametrize("body", [b"", b"{}", b"[1, 2]", b"not json"])
async def test_an_unexpected_2xx_body_is_a_server_error(body: bytes) -> None:
    rec = Recorder(sequence(httpx.Response(200, content=body)))
    async with client_for(rec) as c:
        with pytest.raises(ServerError, match="unexpected answer") as info:
            await c.get_workflow("wf-1")
        assert info.value.status == 200
        with pytest.raises(ServerError, match="unexpected answer"):
            await c.get_task_def("t")
        if body != b"":  # an empty list of correlated workflows is a valid answer
            with pytest.raises(ServerError, match="unexpected answer"):
                await c.get_by_correlation_id("flow", "c1")


async def test_a_poll_is_not_retried_after_a_timeout() -> None:
    # A retried poll could take a second task while the first one is lost in the timeout.
    task = {"taskId": "t-1", "taskType": "work", "status": "IN_PROGRESS"}
    rec = Recorder(sequence(httpx.ReadTimeout("slow"), httpx.Response(200, json=task)))
    async with client_for(rec) as c:
        with pytest.raises(ConductorTimeout):
            await c.poll_task("work")
    assert len(rec.calls) == 1


async def test_a_bulk_resume_is_not_retried_after_a_reset() -> None:
    reset = httpx.ReadError("[Errno 104] Connection reset by peer")
    rec = Recorder(sequence(reset, httpx.Response(200, json={"bulkSuccessfulResults": ["a"]})))
    async with client_for(rec) as c:
        with pytest.raises(ConductorUnavailable):
            await c.bulk_resume(["a"])
    assert len(rec.calls) == 1  # a retry would report the resumed workflow as an error


async def test_a_bare_proxy_503_is_retried_only_for_idempotent_operations() -> None:
    proxy_503 = httpx.Response(503, text="upstream connect error or disconnect/reset")
    ok = httpx.Response(200, text="wf-1")
    rec = Recorder(sequence(proxy_503, ok))
    async with client_for(rec) as c:
        with pytest.raises(ConductorUnavailable, match="503"):
            await c.start_workflow("flow")  # the proxy may have forwarded it
        assert len(rec.calls) == 1
        rec.handler = sequence(proxy_503, httpx.Response(200, json=WORKFLOW))
        assert (await c.get_workflow("wf-1")).workflow_id == "wf-1"
    assert len(rec.calls) == 3


async def test_a_503_with_retry_after_is_retried_even_for_a_start() -> None:
    busy = httpx.Response(503, headers={"Retry-After": "0"}, text="overloaded")
    rec = Recorder(sequence(busy, httpx.Response(200, text="wf-7")))
    async with client_for(rec) as c:
        assert await c.start_workflow("flow") == "wf-7"
    assert len(rec.calls) == 2


async def test_408_is_a_timeout_retried_only_for_idempotent_operations() -> None:
    rec = Recorder(sequence(httpx.Response(408, text="Request Timeout")))
    async with client_for(rec) as c:
        with pytest.raises(ConductorTimeout, match="408"):
            await c.start_workflow("flow")
        assert len(rec.calls) == 1
        rec.handler = sequence(httpx.Response(408), httpx.Response(200, json=WORKFLOW))
        assert (await c.get_workflow("wf-1")).status == "RUNNING"
    assert len(rec.calls) == 3


def test_retry_after_as_an_http_date_is_honoured() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    reply = Reply(429, httpx.Headers({"Retry-After": when}), b"", "POST", "/api/workflow")
    with pytest.raises(Throttled) as info:
        raise_for_status(reply)
    assert info.value.retry_after is not None and 25 <= info.value.retry_after <= 31
    past = email.utils.formatdate(time.time() - 30, usegmt=True)
    with pytest.raises(Throttled) as info:
        raise_for_status(Reply(429, {"retry-after": past}, b"", "GET", "/api/x"))
    assert info.value.retry_after == 0.0


async def test_signal_prefers_the_exact_reference_name_over_an_iteration() -> None:
    tasks = [
        {"taskId": "t-iter", "referenceTaskName": "approve__1", "status": "IN_PROGRESS"},
        {"taskId": "t-exact", "referenceTaskName": "approve", "status": "IN_PROGRESS"},
    ]

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={**WORKFLOW, "tasks": tasks})
        return httpx.Response(200, text=json.loads(request.content)["taskId"])

    rec = Recorder(handler)
    async with client_for(rec) as c:
        task_id = await c.signal("wf-1", "FAILED", task_ref="approve", reason_for_incompletion="no")
    assert task_id == "t-exact"


async def test_consecutive_timeouts_mark_conductor_not_ready_until_it_answers() -> None:
    hung = True

    async def handler(request: httpx.Request) -> httpx.Response:
        if hung:
            raise httpx.ReadTimeout("no answer")
        return httpx.Response(404, json={"message": "No such taskType"})

    rec = Recorder(handler, probes_too=True)
    async with client_for(rec, max_retries=0) as c:
        hung = False
        await asyncio.wait_for(c.wait_ready(), 5)
        hung = True
        for _ in range(2):  # one slow answer is no brown-out
            with pytest.raises(ConductorTimeout):
                await c.get_workflow("wf-1")
        assert c.ready is True
        with pytest.raises(ConductorTimeout):
            await c.get_workflow("wf-1")
        assert c.ready is False  # the third in a row: intake pauses instead of burning attempts
        hung = False
        await asyncio.wait_for(c.wait_ready(), 5)
        assert c.ready is True

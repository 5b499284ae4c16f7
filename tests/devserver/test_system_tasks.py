"""System tasks that compute: INLINE (a sandboxed JavaScript engine), JSON_JQ_TRANSFORM (jq),
and the scripts behind SWITCH and DO_WHILE; hostile scripts fail their task, never the
server."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

import httpx
import pytest
from aiohttp import web

from gateway.devserver import jqrunner, scripting
from gateway.devserver.server import DevServer
from gateway.plan import Destination
from gateway.settings import Settings
from gateway.sinks import Publisher
from tests.devserver.conftest import Api
from tests.messaging import consume_kafka, new_topic


def inline(ref: str, expression: str, **inputs: Any) -> dict[str, Any]:
    return {"name": ref, "taskReferenceName": ref, "type": "INLINE",
            "inputParameters": {"evaluatorType": "javascript", "expression": expression,
                                **inputs}}  # fmt: skip


def jq_task(ref: str, query: str, **inputs: Any) -> dict[str, Any]:
    return {"name": ref, "taskReferenceName": ref, "type": "JSON_JQ_TRANSFORM",
            "inputParameters": {"queryExpression": query, **inputs}}  # fmt: skip


_COUNT = itertools.count()


async def run(api: Api, tasks: list[dict[str, Any]], input: dict[str, Any]) -> dict[str, Any]:
    name = api.name(f"sys{next(_COUNT)}")
    await api.workflow_def(name, tasks)
    workflow_id = await api.start(name, input)

    async def ended() -> dict[str, Any] | None:
        wf = await api.wf(workflow_id)
        return wf if wf["status"] not in ("RUNNING", "PAUSED") else None

    found: dict[str, Any] = await api.until(ended, "workflow did not end")
    return found


def task(wf: dict[str, Any], ref: str) -> dict[str, Any]:
    return next(t for t in wf["tasks"] if t["referenceTaskName"] == ref)


async def test_inline_script_result_is_output_result(api: Api) -> None:
    """`$` is the whole task input; the value of the last expression is `output.result`,
    whole numbers as integers."""
    script = ("(function () { var total = 0;"
              " for (var i of $.order.items) total += i.qty * i.price;"
              " return {total: total, skus: $.order.items.map(i => i.sku), n: 2.0,"
              " kind: $.evaluatorType}; })()")  # fmt: skip
    wf = await run(api, [inline("calc", script, order="${workflow.input.order}")],
                   {"order": {"items": [{"sku": "a", "qty": 2, "price": 1.25},
                                        {"sku": "b", "qty": 1, "price": 3}]}})  # fmt: skip
    assert wf["status"] == "COMPLETED"
    result = task(wf, "calc")["outputData"]["result"]
    assert result == {"total": 5.5, "skus": ["a", "b"], "n": 2, "kind": "javascript"}
    assert isinstance(result["n"], int)


@pytest.mark.parametrize(
    ("inputs", "result"),
    [
        ({"evaluatorType": "graaljs", "expression": "if ($.x > 1) { 'big' } else { 'small' }",
          "x": 2}, "big"),
        ({"evaluatorType": "value-param", "expression": "x", "x": [1, 2]}, [1, 2]),
        ({"expression": "$.x * 2", "x": 21}, 42),  # javascript when evaluatorType is absent
        ({"evaluatorType": "javascript", "expression": "undefined"}, None),
    ],
)  # fmt: skip
async def test_inline_evaluators(api: Api, inputs: dict[str, Any], result: Any) -> None:
    wt = {"name": "i", "taskReferenceName": "i", "type": "INLINE", "inputParameters": inputs}
    wf = await run(api, [wt], {})
    assert (wf["status"], task(wf, "i")["outputData"]) == ("COMPLETED", {"result": result})


@pytest.mark.parametrize(
    ("inputs", "status", "reason"),
    [
        ({"expression": "var x = 1;\nx.y.z"}, "FAILED_WITH_TERMINAL_ERROR",
         "Error evaluating the script `TypeError: Cannot read property 'z' of undefined` "
         "at line 2"),
        ({"expression": "if ("}, "FAILED_WITH_TERMINAL_ERROR", "SyntaxError"),
        ({"evaluatorType": "python", "expression": "1"}, "FAILED_WITH_TERMINAL_ERROR",
         "Unknown evaluator 'python' in INLINE task."),
        ({"evaluatorType": "javascript", "expression": " "}, "FAILED_WITH_TERMINAL_ERROR",
         "Empty 'expression' in Inline task's input parameters."),
    ],
)  # fmt: skip
async def test_inline_errors_fail_the_task(
    api: Api, inputs: dict[str, Any], status: str, reason: str
) -> None:
    wt = {"name": "i", "taskReferenceName": "i", "type": "INLINE", "inputParameters": inputs}
    wf = await run(api, [wt], {})
    failed = task(wf, "i")
    assert wf["status"] == "FAILED"
    assert failed["status"] == status
    assert reason in failed["reasonForIncompletion"]
    assert failed["outputData"]["error"] == failed["reasonForIncompletion"]


HOSTILE = {
    "loop": ("while (true) {}", "FAILED", "Script not evaluated within 1 seconds, interrupted."),
    "gibibyte": ("new ArrayBuffer(1024 * 1024 * 1024).byteLength", "FAILED",
                 "Script exceeded the memory limit of 32 MiB, interrupted."),
    "growing": ("var a = []; while (true) { a.push(new Array(1e6).fill(1.5)); }", "FAILED",
                "Script exceeded the memory limit of 32 MiB, interrupted."),
    "require": ("require('child_process').execSync('id')", "FAILED_WITH_TERMINAL_ERROR",
                "ReferenceError: require is not defined"),
    "process": ("process.exit(1)", "FAILED_WITH_TERMINAL_ERROR",
                "ReferenceError: process is not defined"),
    "fetch": ("fetch('http://127.0.0.1:9/')", "FAILED_WITH_TERMINAL_ERROR",
              "ReferenceError: fetch is not defined"),
}  # fmt: skip


async def test_hostile_scripts_fail_their_task_while_the_server_serves(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each hostile INLINE script fails its own workflow within the limit (1 s, 32 MiB
    here), with a reason that says why; meanwhile the server answers at once."""
    monkeypatch.setattr(scripting, "LIMITS", scripting.Limits(1.0, 32 * 1024 * 1024))
    names = {}
    for key, (script, _, _) in HOSTILE.items():
        names[key] = api.name(f"hostile_{key}")
        await api.workflow_def(names[key], [inline("evil", script)])
    began = time.monotonic()
    ids = {key: await api.start(name, {}) for key, name in names.items()}
    slowest = 0.0
    results: dict[str, dict[str, Any]] = {}
    while len(results) < len(ids) and time.monotonic() - began < 10:
        for key, workflow_id in ids.items():
            asked = time.monotonic()
            wf = await api.wf(workflow_id)
            slowest = max(slowest, time.monotonic() - asked)
            if wf["status"] != "RUNNING":
                results.setdefault(key, wf)
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - began
    assert set(results) == set(HOSTILE), f"still running after {elapsed:.1f} s"
    for key, (_, status, reason) in HOSTILE.items():
        evil = task(results[key], "evil")
        assert (results[key]["status"], evil["status"]) == ("FAILED", status), key
        assert evil["reasonForIncompletion"] == reason or reason in evil["reasonForIncompletion"]
    assert elapsed < 1.0 + 3.0  # the limit, plus the wall-clock grace and a busy machine
    assert slowest < 0.5, f"a GET took {slowest:.2f} s while scripts ran"


async def test_switch_and_loop_conditions_run_full_javascript(api: Api) -> None:
    """Scripts outside the fast subset (calls, loops, functions) run in the sandbox."""
    cases = {"vip": [inline("v", "'vip'")], "2": [inline("n", "'normal'")]}
    switch = {"name": "sw", "taskReferenceName": "sw", "type": "SWITCH",
              "evaluatorType": "javascript", "inputParameters": {"tags": "${workflow.input.tags}"},
              "expression": "$.tags.includes('vip') ? 'vip' : Math.max(1, 2).toString()",
              "decisionCases": cases}  # fmt: skip
    loop = {"name": "lp", "taskReferenceName": "lp", "type": "DO_WHILE",
            "loopCondition": "(function () { return $.lp.iteration < 3; })()",
            "loopOver": [inline("body", "$.i", i="${lp.output.iteration}")]}  # fmt: skip
    wf = await run(api, [switch, loop], {"tags": ["vip"]})
    assert wf["status"] == "COMPLETED"
    assert task(wf, "sw")["outputData"]["selectedCase"] == "vip"
    assert [t["referenceTaskName"] for t in wf["tasks"] if t["taskType"] == "INLINE"] == [
        "v", "body__1", "body__2", "body__3"]  # fmt: skip


async def test_jq_result_and_result_list(api: Api) -> None:
    wf = await run(api, [jq_task("j", ".items | map(.qty * .price) | .[]",
                                 items="${workflow.input.items}")],
                   {"items": [{"qty": 2, "price": 1.5}, {"qty": 3, "price": 2}]})  # fmt: skip
    assert wf["status"] == "COMPLETED"
    assert task(wf, "j")["outputData"] == {"result": 3, "resultList": [3, 6]}


async def test_jq_no_value_and_bad_query(api: Api) -> None:
    empty = await run(api, [jq_task("j", "empty")], {})
    assert task(empty, "j")["outputData"] == {"result": None, "resultList": []}
    bad = await run(api, [jq_task("j", ".a |||")], {})
    failed = task(bad, "j")
    assert (bad["status"], failed["status"]) == ("FAILED", "FAILED")
    assert "syntax error" in failed["reasonForIncompletion"]
    assert failed["outputData"]["error"] == failed["reasonForIncompletion"]


class Loopback:
    """A small HTTP server on 127.0.0.1 for HTTP tasks to call; it records the requests."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.failures_left = 0
        self.failure_status = 500
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        self.requests.append({"method": request.method, "path": request.path,
                              "headers": dict(request.headers), "body": body})  # fmt: skip
        if request.path == "/slow":
            await asyncio.sleep(2)
        if request.path == "/flaky" and self.failures_left > 0:
            self.failures_left -= 1
            return web.Response(status=self.failure_status, text="try later")
        if request.path == "/missing":
            return web.Response(status=404, text="no such order")
        if request.path == "/text":
            return web.Response(text="plain words")
        answer = {"echo": body and json.loads(body), "n": 7, "items": [1, 2]}
        return web.json_response(answer, headers={"X-Trace": "t-1"})

    async def __aenter__(self) -> Loopback:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


def http_task(ref: str, **request: Any) -> dict[str, Any]:
    return {"name": ref, "taskReferenceName": ref, "type": "HTTP",
            "inputParameters": {"http_request": request}}  # fmt: skip


async def test_http_response_as_conductor_gives_it(api: Api) -> None:
    async with Loopback() as server:
        wf = await run(api, [
            http_task("post", uri=f"{server.url}/orders", method="POST",
                      body={"id": "${workflow.input.id}"}, headers={"X-Key": "k1"},
                      accept="application/json", contentType="application/json"),
            http_task("text", uri=f"{server.url}/text", method="GET"),
        ], {"id": "o-1"})  # fmt: skip
    assert wf["status"] == "COMPLETED"
    response = task(wf, "post")["outputData"]["response"]
    assert response["statusCode"] == 200 and response["reasonPhrase"] == "OK"
    assert response["body"] == {"echo": {"id": "o-1"}, "n": 7, "items": [1, 2]}
    assert response["headers"]["X-Trace"] == ["t-1"]
    assert task(wf, "text")["outputData"]["response"]["body"] == "plain words"
    sent = server.requests[0]
    assert (sent["method"], sent["path"], json.loads(sent["body"])) == (
        "POST", "/orders", {"id": "o-1"})  # fmt: skip
    assert sent["headers"]["X-Key"] == "k1"
    assert sent["headers"]["Content-Type"] == "application/json"


async def test_http_error_status_fails_and_follows_the_retry_policy(api: Api) -> None:
    """500 twice, then 200: with retryCount 2 the third attempt completes the workflow; a 404
    without retries fails it with Conductor's reason, the response being the error text."""
    await api.task_defs({"name": api.name("flaky"), "retryCount": 2, "retryDelaySeconds": 0,
                         "responseTimeoutSeconds": 10})  # fmt: skip
    async with Loopback() as server:
        server.failures_left = 2
        flaky = {**http_task("flaky", uri=f"{server.url}/flaky", method="GET"),
                 "name": api.name("flaky")}  # fmt: skip
        ok = await run(api, [flaky], {})
        missing = await run(api, [http_task("missing", uri=f"{server.url}/missing",
                                            method="GET")], {})  # fmt: skip
    assert ok["status"] == "COMPLETED"
    assert [t["status"] for t in ok["tasks"]] == ["FAILED", "FAILED", "COMPLETED"]
    assert ok["tasks"][0]["reasonForIncompletion"] == (
        "Failed to invoke HTTP task due to: java.lang.Exception: 500 Internal Server Error on "
        f'GET request for "{server.url}/flaky": "try later"')  # fmt: skip
    failed = task(missing, "missing")
    assert (missing["status"], failed["status"]) == ("FAILED", "FAILED")
    assert failed["outputData"]["response"] == (
        f'java.lang.Exception: 404 Not Found on GET request for "{server.url}/missing": '
        '"no such order"')  # fmt: skip


async def test_http_503_is_asked_again_once_by_the_client(api: Api) -> None:
    """As the real server's HTTP client: a 503 is asked again once (after 1 s without a
    Retry-After) before the task sees an answer; a second 503 fails the attempt."""
    async with Loopback() as server:
        server.failures_left, server.failure_status = 1, 503
        once = await run(api, [http_task("once", uri=f"{server.url}/flaky", method="GET")], {})
        server.failures_left = 2
        twice = await run(api, [http_task("twice", uri=f"{server.url}/flaky", method="GET")], {})
    assert [t["status"] for t in once["tasks"]] == ["COMPLETED"]
    assert [t["status"] for t in twice["tasks"]] == ["FAILED"]
    assert "503 Service Unavailable" in task(twice, "twice")["reasonForIncompletion"]
    assert [r["path"] for r in server.requests].count("/flaky") == 4


async def test_http_read_timeout_and_refused_connection(api: Api) -> None:
    async with Loopback() as server:
        began = time.monotonic()
        slow = await run(api, [http_task("slow", uri=f"{server.url}/slow", method="GET",
                                         readTimeOut=300)], {})  # fmt: skip
        took = time.monotonic() - began
    refused = await run(api, [http_task("down", uri="http://127.0.0.1:9/", method="GET")], {})
    assert task(slow, "slow")["status"] == "FAILED" and took < 1.8
    assert "I/O error on GET request for" in task(slow, "slow")["reasonForIncompletion"]
    assert task(refused, "down")["status"] == "FAILED"
    assert '"http://127.0.0.1:9/"' in task(refused, "down")["reasonForIncompletion"]


def event_task(ref: str, sink: str, **inputs: Any) -> dict[str, Any]:
    return {"name": ref, "taskReferenceName": ref, "type": "EVENT", "sink": sink,
            "inputParameters": inputs}  # fmt: skip


async def test_event_to_kafka_without_a_publisher_says_what_to_set(api: Api) -> None:
    wf = await run(api, [event_task("ev", "kafka:orders", id="${workflow.input.id}")],
                   {"id": "o-1"})  # fmt: skip
    failed = task(wf, "ev")
    assert (wf["status"], failed["status"]) == ("FAILED", "FAILED")
    assert failed["reasonForIncompletion"].startswith(
        f"Error loading queue:kafka:orders, for task:{failed['taskId']}, error: Unknown queue "
        "type kafka; the dev server publishes kafka: and amqp: sinks only when it has a "
        "publisher: run it under `gateway dev`")  # fmt: skip


async def test_event_conductor_sink_completes_with_conductor_output(api: Api) -> None:
    wf = await run(api, [event_task("ev", "conductor", id="${workflow.input.id}")],
                   {"id": "o-1"})  # fmt: skip
    done = task(wf, "ev")
    assert done["status"] == "COMPLETED"
    assert done["outputData"] == {
        "id": "o-1", "sink": "conductor", "asyncComplete": False,
        "workflowInstanceId": wf["workflowId"], "workflowType": wf["workflowName"],
        "workflowVersion": 1, "correlationId": None, "taskToDomain": {},
        "event_produced": f"conductor:{wf['workflowName']}:ev",
    }  # fmt: skip


@pytest.mark.brokers
async def test_event_publishes_to_tansu_and_a_plain_consumer_reads_it(
    kafka_bootstrap: str,
) -> None:
    """With a publisher (what `gateway dev` passes), kafka:<topic> lands on the broker: the
    message is the task's output, as Conductor's Event task sends it."""
    topic = await new_topic(kafka_bootstrap)
    settings = Settings(kafka={"bootstrap_servers": [kafka_bootstrap],
                               "enable_idempotence": False})  # fmt: skip
    async with Publisher(settings) as publisher:

        async def publish(target: str, payload: bytes) -> None:
            await publisher.publish(Destination.parse(target), payload)

        ev = event_task("ev", f"kafka:{topic}", id="${workflow.input.id}")
        async with (
            DevServer(port=0, event_publisher=publish) as server,
            httpx.AsyncClient(base_url=server.url) as http,
        ):
            wf = await run(Api(server, http), [ev], {"id": "o-7"})
    assert (wf["status"], task(wf, "ev")["status"]) == ("COMPLETED", "COMPLETED")
    [record] = await consume_kafka(kafka_bootstrap, topic, 1)
    message = json.loads(record.value)
    assert message["id"] == "o-7" and message["workflowInstanceId"] == wf["workflowId"]
    assert message["event_produced"] == f"kafka:{topic}"


async def test_wait_duration_until_and_refusals(api: Api) -> None:
    """WAIT ends by itself after a `duration` in Conductor's grammar and at an `until`
    time; what Conductor cannot read is refused at registration (with its words), and an
    unreadable `until` from the input fails the task for good."""
    began = time.monotonic()
    timed = await run(api, [{"name": "w", "taskReferenceName": "w", "type": "WAIT",
                             "inputParameters": {"duration": "1 second"}}], {})  # fmt: skip
    assert timed["status"] == "COMPLETED" and 1.0 <= time.monotonic() - began < 3
    until = {"until": "2020-01-01 00:00 GMT+00:00"}
    past = await run(api, [{"name": "w", "taskReferenceName": "w", "type": "WAIT",
                            "inputParameters": until}], {})  # fmt: skip
    assert past["status"] == "COMPLETED"
    for inputs, message in [
        ({"duration": "1s", "until": "2020-01-01"},
         "Both 'duration' and 'until' specified. Please provide only one input"),
        ({"until": "next tuesday"}, "Unable to parse date "),
        ({"duration": "soon"}, "Either date or duration is passed as null "),
    ]:  # fmt: skip
        wt = {"name": "w", "taskReferenceName": "w", "type": "WAIT", "inputParameters": inputs}
        r = await api.http.post("/metadata/workflow",
                                json={"name": api.name("w"), "tasks": [wt]})  # fmt: skip
        assert r.status_code == 400 and r.json()["validationErrors"][0]["message"] == message
    wt = {"name": "w", "taskReferenceName": "w", "type": "WAIT",
          "inputParameters": {"until": "${workflow.input.u}"}}  # fmt: skip
    wf = await run(api, [wt], {"u": "next tuesday"})
    assert (wf["status"], task(wf, "w")["status"], task(wf, "w")["reasonForIncompletion"]) == (
        "FAILED", "FAILED_WITH_TERMINAL_ERROR",
        "Invalid/Unsupported Wait Until format.  Provided: next tuesday")  # fmt: skip


async def test_hostile_switch_and_loop_conditions_fail_the_workflow(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SWITCH expression or a loop condition that runs away fails within the limit, and
    the server keeps answering meanwhile (Conductor holds its decide; the dev server lets the
    script run on and decides again when it ends)."""
    monkeypatch.setattr(scripting, "LIMITS", scripting.Limits(1.0, 32 * 1024 * 1024))
    switch = {"name": "sw", "taskReferenceName": "sw", "type": "SWITCH",
              "evaluatorType": "javascript", "expression": "while (true) {}; 'a'",
              "decisionCases": {"a": [inline("a", "1")]}}  # fmt: skip
    loop = {"name": "lp", "taskReferenceName": "lp", "type": "DO_WHILE",
            "loopCondition": "new ArrayBuffer(1024 * 1024 * 1024).byteLength > 0",
            "loopOver": [inline("body", "1")]}  # fmt: skip
    name = api.name("hostile_switch")
    await api.workflow_def(name, [switch])
    began = time.monotonic()
    workflow_id = await api.start(name, {})
    asked = time.monotonic()
    running = await api.wf(workflow_id)
    assert time.monotonic() - asked < 0.5, "the server waited for the script"
    assert (running["status"], task(running, "sw")["status"]) == ("RUNNING", "IN_PROGRESS")

    async def ended() -> dict[str, Any] | None:
        wf = await api.wf(workflow_id)
        return wf if wf["status"] != "RUNNING" else None

    stuck = await api.until(ended, "runaway SWITCH expression still running")
    heavy = await run(api, [loop], {})
    assert time.monotonic() - began < 1.0 + 1.0 + 3.0
    assert (stuck["status"], task(stuck, "sw")["status"]) == ("FAILED", "FAILED")
    assert "Script not evaluated within 1 seconds" in task(stuck, "sw")["reasonForIncompletion"]
    assert task(heavy, "lp")["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert "memory limit of 32 MiB" in task(heavy, "lp")["reasonForIncompletion"]


async def test_slow_switch_and_loop_scripts_go_on_after_the_decide(api: Api) -> None:
    """A script that takes longer than the decide's short wait (0.2 s) but ends within the
    limit takes its branch and loops as if it had been quick."""
    slow = "var t = Date.now(); while (Date.now() - t < 400) {}; "
    switch = {"name": "sw", "taskReferenceName": "sw", "type": "SWITCH",
              "evaluatorType": "javascript", "expression": slow + "'b'",
              "decisionCases": {"a": [inline("a", "'A'")], "b": [inline("b", "'B'")]}}  # fmt: skip
    loop = {"name": "lp", "taskReferenceName": "lp", "type": "DO_WHILE",
            "loopCondition": slow + "$.lp.iteration < 2",
            "loopOver": [inline("body", slow + "$.i", i="${lp.output.iteration}")]}  # fmt: skip
    wf = await run(api, [switch, loop], {})
    assert wf["status"] == "COMPLETED"
    assert task(wf, "sw")["outputData"]["selectedCase"] == "b"
    ran = [(t["referenceTaskName"], t["status"], t["outputData"].get("result"))
           for t in wf["tasks"] if t["taskType"] == "INLINE"]  # fmt: skip
    assert ran == [
        ("b", "COMPLETED", "B"),
        ("body__1", "COMPLETED", 1),
        ("body__2", "COMPLETED", 2),
    ]
    assert task(wf, "lp")["outputData"]["iteration"] == 2


async def test_runaway_jq_query_fails_its_task_while_the_server_serves(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """jq holds the GIL, so queries run in a worker process: one that never ends fails its
    task after the limit (1 s here) and the worker is replaced; the server answers meanwhile
    and the next query runs."""
    monkeypatch.setattr(jqrunner, "TIME_LIMIT_SECONDS", 1.0)
    name = api.name("jq_forever")
    await api.workflow_def(name, [jq_task("spin", "[repeat(1)] | length")])
    workflow_id = await api.start(name, {})
    began = time.monotonic()
    asked = time.monotonic()
    assert (await api.wf(workflow_id))["status"] == "RUNNING"
    assert time.monotonic() - asked < 0.5

    async def ended() -> dict[str, Any] | None:
        wf = await api.wf(workflow_id)
        return wf if wf["status"] != "RUNNING" else None

    wf = await api.until(ended, "runaway jq query still running")
    assert time.monotonic() - began < 1.0 + 3.0
    assert task(wf, "spin")["reasonForIncompletion"] == (
        "jq query not evaluated within 1 seconds, interrupted.")  # fmt: skip
    after = await run(api, [jq_task("ok", ".a", a=1)], {})
    assert task(after, "ok")["outputData"]["result"] == 1

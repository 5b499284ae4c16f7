"""Shapes with system tasks that compute (INLINE, JSON_JQ_TRANSFORM, full JavaScript in SWITCH
and DO_WHILE), run on both servers like the others in shapes.py."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from aiohttp import web

from tests.differential.driver import Driver, Wf, anonymous, snapshot
from tests.differential.shapes import shape


def inline(ref: str, expression: str, **inputs: Any) -> dict[str, Any]:
    return {"name": ref, "taskReferenceName": ref, "type": "INLINE",
            "inputParameters": {"evaluatorType": "javascript", "expression": expression,
                                **inputs}}  # fmt: skip


def jq_task(ref: str, query: str, **inputs: Any) -> dict[str, Any]:
    return {"name": ref, "taskReferenceName": ref, "type": "JSON_JQ_TRANSFORM",
            "inputParameters": {"queryExpression": query, **inputs}}  # fmt: skip


def outputs(wf: Wf, d: Driver, *refs: str) -> dict[str, Any]:
    found: dict[str, Any] = {
        t["referenceTaskName"]: t.get("outputData", {})
        for t in wf["tasks"]
        if t["referenceTaskName"] in refs
    }
    return {"outputs": anonymous(found, d)}


def statuses_and_reasons(wf: Wf, *refs: str) -> dict[str, Any]:
    """Status per task and whether it has a reason (the texts of GraalJS and jackson-jq are
    not QuickJS's and jq's)."""
    return {
        t["referenceTaskName"]: (t["status"], bool(t.get("reasonForIncompletion")))
        for t in wf["tasks"]
        if t["referenceTaskName"] in refs
    }


def http_task(ref: str, **request: Any) -> dict[str, Any]:
    return {"name": ref, "taskReferenceName": ref, "type": "HTTP",
            "inputParameters": {"http_request": request}}  # fmt: skip


class Loopback:
    """An HTTP server on 127.0.0.1 for HTTP tasks of both servers to call."""

    def __init__(self) -> None:
        self.runner: web.AppRunner | None = None
        self.url = ""
        self.calls: Counter[str] = Counter()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        self.calls[request.path] += 1
        if request.path in ("/flaky", "/busy"):  # fail their first call only
            if self.calls[request.path] == 1:
                status = 500 if request.path == "/flaky" else 503
                return web.Response(status=status, text="warming up")
            return web.json_response({"ok": True})
        answers: dict[str, web.StreamResponse] = {
            "/json": web.json_response({"n": 7, "x": 1.5, "items": [1, "a"], "none": None},
                                       headers={"X-Trace": "t-1"}),
            "/text": web.Response(text="plain words"),
            "/echo": web.json_response({"got": json.loads(body or "null")}),
            "/number": web.Response(text="42", content_type="application/json"),
        }  # fmt: skip
        return answers.get(request.path) or web.Response(status=404, text="no such order")

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


ORDER = {"items": [{"sku": "a", "qty": 2, "price": 1.25}, {"sku": "b", "qty": 1, "price": 3}],
         "customer": {"name": "ada", "tier": "gold"}}  # fmt: skip


@shape
async def inline_and_jq_outputs(d: Driver) -> list[Any]:
    """INLINE's `output.result` (objects, lists, whole numbers, strings, null) and jq's
    `result`/`resultList`, fed from the workflow input and from each other."""
    script = ("(function () { var total = 0;"
              " for (var i = 0; i < $.order.items.length; i++) {"
              "   total += $.order.items[i].qty * $.order.items[i].price; }"
              " return {total: total, count: $.order.items.length, whole: 4.0,"
              " who: $.order.customer.name.toUpperCase(), nothing: null, kind: $.evaluatorType};"
              " })()")  # fmt: skip
    await d.workflow_def("ijq", [
        inline("calc", script, order="${workflow.input.order}"),
        inline("flag", "$.total > 5 ? 'big' : 'small'", total="${calc.output.result.total}"),
        jq_task("skus", ".items[] | .sku", items="${workflow.input.order.items}"),
        jq_task("shape", "{tier: .c.tier, n: (.items | length), half: (.t / 2)}",
                c="${workflow.input.order.customer}", items="${workflow.input.order.items}",
                t="${calc.output.result.total}"),
        jq_task("none", "empty"),
    ], outputParameters={"calc": "${calc.output.result}", "flag": "${flag.output.result}",
                         "skus": "${skus.output.resultList}", "shape": "${shape.output.result}",
                         "none": "${none.output}"})  # fmt: skip
    wf = await d.ended(await d.start("ijq", {"order": ORDER}))
    return [snapshot(wf, d), outputs(wf, d, "calc", "flag", "skus", "shape", "none")]


@shape
async def inline_script_error_fails_workflow(d: Driver) -> list[Any]:
    """A script that throws: the task is FAILED_WITH_TERMINAL_ERROR and the workflow FAILS."""
    await d.workflow_def("ierr", [inline("ok", "1 + 1"), inline("bad", "$.missing.field")])
    wf = await d.ended(await d.start("ierr", {}))
    return [snapshot(wf, d), statuses_and_reasons(wf, "ok", "bad")]


@shape
async def optional_inline_error_continues(d: Driver) -> list[Any]:
    await d.workflow_def("iopt", [
        {**inline("bad", "undefinedFunction()"), "optional": True},
        inline("after", "'went on'"),
    ])  # fmt: skip
    wf = await d.ended(await d.start("iopt", {}))
    return [snapshot(wf, d), statuses_and_reasons(wf, "bad", "after")]


@shape
async def jq_bad_query_fails_workflow(d: Driver) -> list[Any]:
    await d.workflow_def("jqbad", [jq_task("bad", '.a | error("no")', a=1)])
    wf = await d.ended(await d.start("jqbad", {}))
    return [snapshot(wf, d), statuses_and_reasons(wf, "bad")]


@shape
async def javascript_switch_and_loop(d: Driver) -> list[Any]:
    """Full JavaScript in a SWITCH expression and a DO_WHILE condition (a function, a loop
    over the outputs), the body an INLINE that counts."""
    switch = {"name": "sw", "taskReferenceName": "sw", "type": "SWITCH",
              "evaluatorType": "javascript",
              "inputParameters": {"total": "${workflow.input.total}"},
              "expression": "(function () { if ($.total >= 100) return 'large';"
                            " return $.total >= 10 ? 'medium' : 'small'; })()",
              "decisionCases": {"large": [inline("l", "'L'")], "medium": [inline("m", "'M'")]},
              "defaultCase": [inline("s", "'S'")]}  # fmt: skip
    loop = {"name": "lp", "taskReferenceName": "lp", "type": "DO_WHILE",
            "inputParameters": {"max": "${workflow.input.max}"},
            "loopCondition": "(function () { var n = 0; for (var k in $.lp) { n++; }"
                             " return $.lp.iteration < $.max && n > 0; })()",
            "loopOver": [inline("body", "$.i * 10", i="${lp.output.iteration}")]}  # fmt: skip
    await d.workflow_def("jsl", [switch, loop], outputParameters={"loop": "${lp.output}"})
    shots = []
    for total in (150, 20, 3):
        wf = await d.ended(await d.start("jsl", {"total": total, "max": 3}))
        shots += [snapshot(wf, d), outputs(wf, d, "sw")]
    return shots


@shape
async def http_calls(d: Driver) -> list[Any]:
    """HTTP against a loopback server: a JSON answer, a text answer, a POST whose body comes
    back, then a 404 that fails the workflow. Headers other than the server's own differ by
    server (Date, Server), so only X-Trace is compared."""
    async with Loopback() as server:
        await d.workflow_def("http", [
            http_task("get", uri=f"{server.url}/json", method="GET"),
            http_task("text", uri=f"{server.url}/text", method="GET"),
            http_task("post", uri=f"{server.url}/echo", method="POST",
                      body={"id": "${workflow.input.id}", "n": 2}),
            http_task("num", uri=f"{server.url}/number", method="GET"),
            http_task("missing", uri=f"{server.url}/missing", method="GET"),
        ])  # fmt: skip
        wf = await d.ended(await d.start("http", {"id": "o-1"}))
        wf = json.loads(json.dumps(wf).replace(server.url, "http://loopback"))
    shown = {}
    for t in wf["tasks"]:
        response = t.get("outputData", {}).get("response")
        if isinstance(response, dict):
            trace = response.pop("headers", {}).get("X-Trace")
            response = {**response, "trace": trace}
        shown[t["referenceTaskName"]] = (t["status"], response, t.get("reasonForIncompletion"))
    return [snapshot(wf, d) | {"output": None}, anonymous(shown, d)]


@shape
async def event_sinks(d: Driver) -> list[Any]:
    """EVENT to Conductor's own queue completes with the payload as output; to kafka: on a
    server without a Kafka queue provider (the real boot jar's default, and the dev server
    without a publisher) it fails with the same reason (the dev server then says what to
    set)."""
    await d.workflow_def("evc", [
        {"name": "ev", "taskReferenceName": "ev", "type": "EVENT", "sink": "conductor",
         "inputParameters": {"id": "${workflow.input.id}", "n": 2}},
        {"name": "ev2", "taskReferenceName": "ev2", "type": "EVENT", "sink": "conductor:named",
         "inputParameters": {}},
    ])  # fmt: skip
    await d.workflow_def("evk", [
        {"name": "ev", "taskReferenceName": "ev", "type": "EVENT", "sink": "kafka:orders",
         "inputParameters": {"id": "${workflow.input.id}"}},
    ])  # fmt: skip
    done = await d.ended(await d.start("evc", {"id": "o-1"}))
    failed = await d.ended(await d.start("evk", {"id": "o-1"}))
    reason = next(t for t in failed["tasks"] if t["referenceTaskName"] == "ev")[
        "reasonForIncompletion"
    ]
    return [
        snapshot(done, d),
        outputs(done, d, "ev", "ev2"),
        snapshot(failed, d) | {"output": None},
        anonymous(reason.split(";")[0], d),
    ]


def wait_task(ref: str, **inputs: Any) -> dict[str, Any]:
    return {"name": ref, "taskReferenceName": ref, "type": "WAIT", "inputParameters": inputs}


@shape
async def wait_durations_and_until(d: Driver) -> list[Any]:
    """WAIT ends by itself after `duration` ("1s", " 1 Second ") or at `until` (a past time
    ends it at once). Both given (even as expressions), or a duration or `until` Conductor
    cannot read, are refused at registration. (An unreadable `until` from the input: the real
    server marks the WAIT FAILED_WITH_TERMINAL_ERROR but leaves the workflow RUNNING for 20 s
    and more; the dev server fails the workflow at once.)"""
    await d.workflow_def("wdur", [
        wait_task("w1", duration="1s"),
        wait_task("w2", duration=" 1 Second "),
        wait_task("w3", until="2020-01-01 00:00 GMT+00:00"),
    ])  # fmt: skip
    refusals = []
    for inputs in ({"duration": "1s", "until": "2020-01-01"}, {"until": "next tuesday"},
                   {"duration": "soon"}):  # fmt: skip
        body = {"name": d.name("wrefused"), "version": 1, "tasks": [wait_task("w", **inputs)]}
        r = await d.http.post("/metadata/workflow", json=body)
        refusals.append((r.status_code, [e["message"] for e in r.json()["validationErrors"]]))
    shots: list[Any] = [refusals]
    wf = await d.ended(await d.start("wdur", {}))
    return [*shots, snapshot(wf, d), statuses_and_reasons(wf, "w1", "w2", "w3")]


@shape
async def kitchen_sink_of_system_tasks(d: Driver) -> list[Any]:
    """The issue's kitchen sink without workers: INLINE -> JSON_JQ_TRANSFORM -> a javascript
    SWITCH -> a FORK of HTTP (loopback) and WAIT 1 s -> JOIN -> a DO_WHILE of INLINE ->
    SET_VARIABLE -> EVENT (Conductor's own queue: the real server has no Kafka provider)."""
    async with Loopback() as server:
        await d.workflow_def("ks", [
            inline("price", "$.qty * $.unit", qty="${workflow.input.qty}", unit=2.5),
            jq_task("tag", "if .p > 10 then \"bulk\" else \"single\" end",
                    p="${price.output.result}"),
            {"name": "sw", "taskReferenceName": "sw", "type": "SWITCH",
             "evaluatorType": "javascript", "expression": "$.t === 'bulk' ? 'bulk' : 'other'",
             "inputParameters": {"t": "${tag.output.result}"},
             "decisionCases": {"bulk": [inline("disc", "0.1")]},
             "defaultCase": [inline("nodisc", "0")]},
            {"name": "fk", "taskReferenceName": "fk", "type": "FORK_JOIN", "forkTasks": [
                [http_task("call", uri=f"{server.url}/json", method="GET")],
                [wait_task("pause", duration="1s")]]},
            {"name": "jn", "taskReferenceName": "jn", "type": "JOIN",
             "joinOn": ["call", "pause"]},
            {"name": "lp", "taskReferenceName": "lp", "type": "DO_WHILE",
             "loopCondition": "$.lp.iteration < 2",
             "loopOver": [inline("step", "$.i * 2", i="${lp.output.iteration}")]},
            {"name": "sv", "taskReferenceName": "sv", "type": "SET_VARIABLE",
             "inputParameters": {"tag": "${tag.output.result}"}},
            {"name": "ev", "taskReferenceName": "ev", "type": "EVENT", "sink": "conductor",
             "inputParameters": {"price": "${price.output.result}"}},
        ], outputParameters={"price": "${price.output.result}", "tag": "${workflow.variables.tag}",
                             "n": "${call.output.response.body.n}", "loop": "${lp.output}",
                             "event": "${ev.output.event_produced}"})  # fmt: skip
        wf = await d.ended(await d.start("ks", {"qty": 6}))
    return [snapshot(wf, d)]


@shape
async def input_mapping_grammar(d: Driver) -> list[Any]:
    """Expressions as Conductor maps them: JSONPath into arrays, the workflow's own fields, a
    task's input and output, several expressions in one string (values as Java prints them),
    a missing path, and `$${...}` for a literal."""
    order = {"items": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1}], "total": 2.5,
             "paid": True, "note": None, "tags": ["x", "y"]}  # fmt: skip
    mapped = {
        "sku": "${workflow.input.order.items[1].sku}",
        "first": "${workflow.input.order.items[0]}",
        "id": "${workflow.workflowId}",
        "corr": "${workflow.correlationId}",
        "type": "${workflow.workflowType}",
        "calc": "${calc.output}",
        "calcIn": "${calc.input.n}",
        "text": "total=${workflow.input.order.total} paid=${workflow.input.order.paid} "
                "note=${workflow.input.order.note} tags=${workflow.input.order.tags}",
        "item": "item ${workflow.input.order.items[0]}",
        "missing": "${workflow.input.nothing.here}",
        "literal": "$${workflow.input.order}",
        "nested": {"list": ["${workflow.input.order.items[0].qty}", 3]},
    }  # fmt: skip
    await d.workflow_def("imap", [inline("calc", "$.n + 1", n="${workflow.input.n}")],
                         outputParameters=mapped)  # fmt: skip
    body = {"name": d.name("imap"), "input": {"order": order, "n": 41}, "correlationId": "c-9"}
    r = await d.http.post("/workflow", json=body)
    wf = await d.ended(r.text)
    return [snapshot(wf, d)]


@shape
async def task_id_and_input_templates(d: Driver) -> list[Any]:
    """`${CPEWF_TASK_ID}` is the task's own id for the task types whose mapper passes it
    (SIMPLE, INLINE, WAIT, a retried attempt its new id) and stays as written for the others
    (SWITCH, SET_VARIABLE); a task definition's inputTemplate fills keys missing from the
    inputParameters and keys that map to null; a workflow definition's inputTemplate fills
    missing keys of a non-empty start input only."""
    taskdef = {"name": d.name("tmpl"), "retryCount": 1, "retryDelaySeconds": 0,
               "responseTimeoutSeconds": 300, "ownerEmail": "t@example.com",
               "inputTemplate": {"region": "eu", "tier": "gold", "mine": "${CPEWF_TASK_ID}",
                                 "nested": {"k": [1, "two"]}}}  # fmt: skip
    r = await d.http.post("/metadata/taskdefs", json=[taskdef])
    assert r.status_code == 200, r.text
    me = {"me": "${CPEWF_TASK_ID}", "tag": "id-${CPEWF_TASK_ID}"}
    await d.workflow_def("tid", [
        {"name": d.name("tmpl"), "taskReferenceName": "w", "type": "SIMPLE",
         "inputParameters": {**me, "region": "${workflow.input.nowhere}", "tier": "silver"}},
        inline("calc", "$.me", **me),
        {"name": "sw", "taskReferenceName": "sw", "type": "SWITCH",
         "evaluatorType": "value-param", "expression": "me", "inputParameters": me,
         "decisionCases": {"x": [inline("x", "1")]}, "defaultCase": []},
        {"name": "sv", "taskReferenceName": "sv", "type": "SET_VARIABLE",
         "inputParameters": {"seen": "${CPEWF_TASK_ID}"}},
        {"name": "wt", "taskReferenceName": "wt", "type": "WAIT",
         "inputParameters": {**me, "duration": "1s"}},
    ], inputTemplate={"a": 1, "b": 2, "deep": {"x": True}})  # fmt: skip
    workflow_id = await d.start("tid", {"b": 3})
    await d.work("tmpl", status="FAILED", reason="once")
    await d.work("tmpl")
    given = await d.ended(workflow_id)
    empty = await d.get(await d.start("tid", {}))
    own = {}
    for t in given["tasks"]:
        data = t.get("inputData", {})
        own[t["referenceTaskName"] + ("" if t.get("retryCount", 0) == 0 else "#retry")] = {
            "me": "own id" if data.get("me") == t["taskId"] else data.get("me"),
            "tag": data.get("tag", "").replace(t["taskId"], "<own>"),
            "rest": {k: v for k, v in data.items() if k not in ("me", "tag", "mine")},
            "mine": "own id" if data.get("mine") == t["taskId"] else data.get("mine"),
        }
    return [snapshot(given, d), given["input"], anonymous(own, d), empty["input"]]


@shape
async def rerun_calls_a_failed_http_task_again(d: Driver) -> list[Any]:
    """A workflow FAILED by an HTTP task (a 500, no retries), rerun from that task: the call
    is made again, succeeds, and the workflow completes; rerun from the whole workflow calls
    it a third time. A 503 is asked again once by the HTTP client itself (the real server's
    Apache HttpClient does), so that task completes at its first attempt."""
    async with Loopback() as server:
        await d.workflow_def("rerun_http", [
            http_task("busy", uri=f"{server.url}/busy", method="GET"),
            http_task("call", uri=f"{server.url}/flaky", method="GET"),
            inline("after", "$.ok", ok="${call.output.response.body.ok}"),
        ])  # fmt: skip
        workflow_id = await d.start("rerun_http", {})
        failed = await d.ended(workflow_id)
        call = next(t for t in failed["tasks"] if t["referenceTaskName"] == "call")
        r = await d.http.post(
            f"/workflow/{workflow_id}/rerun", json={"reRunFromTaskId": call["taskId"]}
        )
        assert r.status_code == 200, r.text
        done = await d.ended(workflow_id)
        after_task = server.calls["/flaky"]
        r = await d.http.post(f"/workflow/{workflow_id}/rerun", json={})
        assert r.status_code == 200, r.text
        again = await d.ended(workflow_id)
        return [snapshot(failed, d) | {"output": None}, snapshot(done, d), after_task,
                snapshot(again, d), dict(server.calls)]  # fmt: skip


@shape
async def jsonpath_beyond_dots(d: Driver) -> list[Any]:
    """Conductor reads `${...}` with Jayway JsonPath: wildcards, filters, deep scan, slices and
    unions give lists (rendered as JSON inside text), bracket keys with spaces, negative
    indexes, a leading `$.`, and functions on a definite value; misses give null or []."""
    order = {"items": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1}, {"sku": "c", "qty": 5}],
             "customer": {"name": "ada", "first name": "A"}, "nums": [1, 2, 5]}  # fmt: skip
    paths = {
        "star": "items[*].sku", "filter": "items[?(@.qty > 1)].sku",
        "bracket": "['customer']['name']", "spaced": "customer['first name']",
        "deep": "..sku", "last": "items[-1].sku", "slice": "items[0:2]",
        "union": "items[0,2].sku", "beyond": "items[7]", "mapindex": "customer[0]",
        "length": "items.length()", "keys": "customer.keys()", "sum": "nums.sum()",
        "max": "nums.max()", "avg": "nums.avg()", "starsum": "items[*].qty.sum()",
        "malformed": "items[?(@.qty >",
    }  # fmt: skip
    mapped = {k: "${workflow.input.order" + ("" if v[0] in ".[" else ".") + v + "}"
              for k, v in paths.items()}  # fmt: skip
    mapped |= {"missing": "${workflow.input.nothing[*].x}", "dollar": "${$.workflow.input.n}",
               "text": "skus=${workflow.input.order.items[*].sku} n=${workflow.input.order."
                       "items.length()} c=${workflow.input.order.customer}",
               "fromtask": "${calc.output.result[1:]}", "blank": "a${}b${ }c"}  # fmt: skip
    await d.workflow_def("jpath", [inline("calc", "[1, 2, 3]")], outputParameters=mapped)
    wf = await d.ended(await d.start("jpath", {"order": order, "n": 3}))
    return [snapshot(wf, d)]

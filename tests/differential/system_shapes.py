"""Shapes with system tasks that compute (INLINE, JSON_JQ_TRANSFORM, full JavaScript in SWITCH
and DO_WHILE), run on both servers like the others in shapes.py."""

from __future__ import annotations

from typing import Any

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

"""Kitchen sink: one workflow with every task type the builder has, run to the end.

    GATEWAY_CONDUCTOR__URL=http://127.0.0.1:8080/api python examples/kitchensink.py

SIMPLE tasks (run by the workers below), SWITCH, FORK_JOIN with its JOIN, DO_WHILE, an inline
SUB_WORKFLOW, DYNAMIC, FORK_JOIN_DYNAMIC, INLINE (JavaScript), JSON_JQ_TRANSFORM, HTTP, EVENT,
WAIT, HUMAN (completed by this script), SET_VARIABLE, START_WORKFLOW and TERMINATE (in the
SWITCH's default case). Exits 0 only when the workflow COMPLETED with the expected output.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from gateway.conductor import (
    ConductorClient,
    ConductorEventTask,
    ConductorWorkflow,
    DynamicForkTask,
    DynamicTask,
    HttpInput,
    HttpTask,
    HumanTask,
    InlineSubWorkflowTask,
    JavascriptTask,
    JoinTask,
    JsonJQTask,
    LoopTask,
    SetVariableTask,
    SimpleTask,
    StartWorkflowTask,
    SwitchTask,
    TaskDef,
    TerminateTask,
    TimeoutPolicy,
    WaitForDurationTask,
    WorkflowStatus,
)
from gateway.conductor.models import StartWorkflowRequest
from gateway.conductor.runner import TaskRunner
from gateway.conductor.worker import worker_task

URL = os.environ.get("GATEWAY_CONDUCTOR__URL", "http://127.0.0.1:8080/api")


def kitchensink(api_url: str) -> ConductorWorkflow:
    """The workflow. (tests/workflows/test_sdk_equality.py runs this very function with
    conductor-python's classes and checks both give the same definition.)"""
    wf = ConductorWorkflow("kitchensink", version=1, description="every task type")
    wf.timeout_seconds(600).timeout_policy(TimeoutPolicy.TIME_OUT_WORKFLOW)
    wf.owner_email("examples@example.com").variables({"stage": "new"})

    prepare = SimpleTask("ks_prepare", "prepare").input_parameter("orderId", wf.input("orderId"))
    price = JavascriptTask(
        "price",
        "(function () { return $.items.length * 10; })()",
        {"items": prepare.output("items")},
    )
    summarize = JsonJQTask("summarize", "{count: (.items | length)}")
    summarize.input_parameter("items", prepare.output("items"))
    unknown = TerminateTask("unknown_kind", WorkflowStatus.FAILED, "no such kind of order")
    route = SwitchTask("route", prepare.output("kind"))
    route.switch_case("express", [price]).switch_case("standard", [summarize])
    route.default_case([unknown])

    ping = HttpTask("ping", HttpInput(uri=f"{api_url}/metadata/taskdefs/ks_prepare"))
    announce = ConductorEventTask("announce", "kitchensink_events")
    announce.input_parameter("orderId", wf.input("orderId"))
    loop = LoopTask("loop", 3, [SimpleTask("ks_count", "count").input_parameter("n", 1)])

    child = ConductorWorkflow("kitchensink_child", version=1)
    child >> SetVariableTask("remember").input_parameter("seen", True)
    child.output_parameters({"seen": "${workflow.variables.seen}"})
    sub = InlineSubWorkflowTask("child", child)

    dynamic = DynamicTask(wf.input("dynamicTask"), "dynamic")
    plan = JavascriptTask(
        "plan",
        "(function () { var t = [], i = {}; for (var k = 0; k < $.n; k++) {"
        " t.push({name: 'ks_count', taskReferenceName: 'fan_' + k, type: 'SIMPLE'});"
        " i['fan_' + k] = {n: k}; } return {tasks: t, inputs: i}; })()",
        {"n": 2},
    )
    fanout = DynamicForkTask("fanout", join_task=JoinTask("fanout_join"))
    fanout.input_parameter("dynamicTasks", plan.output("tasks"))
    fanout.input_parameter("dynamicTasksInputs", plan.output("inputs"))

    total = SetVariableTask("set_total").input_parameter("total", price.output())
    side = StartWorkflowTask(
        "start_side",
        "kitchensink_side",
        StartWorkflowRequest(name="kitchensink_side", input={"orderId": wf.input("orderId")}),
    )
    approve = HumanTask("approve", display_name="Approve the order")

    wf >> prepare >> route >> [[ping], [announce], [loop]] >> sub >> dynamic >> plan >> fanout
    wf >> total >> WaitForDurationTask("breathe", 1) >> side >> approve
    wf.output_parameters(
        {
            "kind": prepare.output("kind"),
            "total": "${workflow.variables.total}",
            "iterations": loop.output("iteration"),
            "childSeen": sub.output("seen"),
            "approvedBy": approve.output("by"),
            "pingStatus": ping.status_code(),
        }
    )
    return wf


def side_workflow() -> ConductorWorkflow:
    side = ConductorWorkflow("kitchensink_side", version=1)
    return side >> SetVariableTask("note").input_parameter("orderId", side.input("orderId"))


@worker_task("ks_prepare")
def prepare(orderId: str) -> dict[str, Any]:
    print(f"  worker ks_prepare: order {orderId} is express, 3 items")
    return {"kind": "express", "items": ["apple", "pear", "fig"]}


@worker_task("ks_count", concurrency=4)
async def count(n: int) -> dict[str, Any]:
    return {"counted": n}


async def main() -> int:
    async with ConductorClient(URL) as client:
        print(f"Conductor at {URL}")
        await client.register_task_defs(
            [TaskDef(name=n, retry_count=0, response_timeout_seconds=30) for n in WORKERS]
        )
        await client.register_workflow(side_workflow(), overwrite=True)
        wf = kitchensink(URL)
        await client.register_workflow(wf, overwrite=True)
        print(f"registered {wf.name} ({len(wf.to_workflow_def().tasks)} top-level tasks)")
        runner = TaskRunner(client, [prepare, count])
        workers = asyncio.create_task(runner.run())
        try:
            workflow_id = await client.start_workflow(
                wf.name, input={"orderId": "K-1", "dynamicTask": "ks_count"}
            )
            print(f"started {workflow_id}; waiting for the HUMAN task 'approve'")
            await _until(client, workflow_id, lambda w: _pending(w, "approve"))
            await client.signal(workflow_id, "COMPLETED", {"by": "ana"}, task_ref="approve")
            print("approved as 'ana'")
            final = await _until(client, workflow_id, lambda w: w.terminal)
        finally:
            runner.stop()
            await workers
    return _verdict(final)


WORKERS = ["ks_prepare", "ks_count"]
EXPECTED = {"kind": "express", "total": 30, "iterations": 3, "childSeen": True, "approvedBy": "ana"}


def _pending(workflow: Any, ref: str) -> bool:
    return any(t.reference_task_name == ref and not t.terminal for t in workflow.tasks)


async def _until(client: ConductorClient, workflow_id: str, done: Any, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        workflow = await client.get_workflow(workflow_id)
        if done(workflow) or workflow.terminal or time.monotonic() > deadline:
            return workflow
        await asyncio.sleep(0.2)


def _verdict(workflow: Any) -> int:
    print(f"workflow {workflow.workflow_id}: {workflow.status}")
    for task in workflow.tasks:
        print(f"  {task.reference_task_name:<16} {task.task_type:<18} {task.status}")
    output = {k: workflow.output.get(k) for k in EXPECTED}
    print(f"output: {output} (HTTP ping answered {workflow.output.get('pingStatus')})")
    if workflow.status != "COMPLETED" or output != EXPECTED:
        reason = workflow.reason_for_incompletion
        print(f"NOT AS EXPECTED: wanted COMPLETED with {EXPECTED}; {reason}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

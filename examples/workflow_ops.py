"""Workflow operations: start, status with tasks, variables, pause, resume, signal, terminate,
retry, restart, rerun from a task, and search by query and by free text.

    GATEWAY_CONDUCTOR__URL=http://127.0.0.1:8080/api python examples/workflow_ops.py

The workflow waits for a signal (WAIT), then runs a worker task. Updating variables is an
Orkes-only endpoint: on OSS this says so and skips it. Exits 0 only when every operation had
its effect and the workflow finally COMPLETED.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.conductor import (
    ConductorClient,
    ConductorWorkflow,
    Query,
    SimpleTask,
    TaskDef,
    WaitTask,
    Workflow,
)
from gateway.conductor.runner import TaskRunner
from gateway.conductor.worker import worker_task

URL = os.environ.get("GATEWAY_CONDUCTOR__URL", "http://127.0.0.1:8080/api")


@worker_task("ops_ship")
def ship(orderId: str, approved: bool | None = None) -> dict[str, Any]:
    return {"shipped": orderId, "approved": approved}


def order_workflow() -> ConductorWorkflow:
    wf = ConductorWorkflow("ops_order", version=1)
    approval = WaitTask("approval")
    ship_it = SimpleTask("ops_ship", "ship").input_parameter("orderId", wf.input("orderId"))
    ship_it.input_parameter("approved", approval.output("approved"))
    wf >> approval >> ship_it
    return wf.output_parameters({"shipped": ship_it.output("shipped")})


class Steps:
    """Prints each step and remembers whether all of them did what they should."""

    def __init__(self) -> None:
        self.ok = True

    def check(self, step: str, ok: bool, detail: str = "") -> None:
        self.ok &= ok
        print(f"{'ok ' if ok else 'BAD'} {step}{': ' + detail if detail else ''}")


async def main() -> int:
    steps = Steps()
    async with ConductorClient(URL) as client:
        print(f"Conductor at {URL}")
        await client.register_task_defs([TaskDef(name="ops_ship", retry_count=0)])
        await client.register_workflow(order_workflow(), overwrite=True)
        order = f"ops-{uuid.uuid4().hex[:8]}"
        wf_id = await client.start_workflow(
            "ops_order", input={"orderId": order}, correlation_id=order
        )
        steps.check("start", bool(wf_id), f"{wf_id} (order {order})")
        await _status_and_variables(client, wf_id, steps)
        await _pause_resume_terminate(client, wf_id, steps)
        await _retry_restart_rerun(client, wf_id, steps)
        await _search(client, order, wf_id, steps)
        await client.signal(wf_id, "COMPLETED", {"approved": True}, task_ref="approval")
        steps.check("signal the WAIT task 'approval'", True)
        runner = TaskRunner(client, [ship])
        workers = asyncio.create_task(runner.run())
        try:
            final = await _until(client, wf_id, lambda w: w.terminal)
        finally:
            runner.stop()
            await workers
        steps.check("completed", final.status == "COMPLETED", f"{final.status} {final.output}")
        steps.check("output", final.output == {"shipped": order})
    return 0 if steps.ok else 1


async def _status_and_variables(client: ConductorClient, wf_id: str, steps: Steps) -> None:
    wf = await client.get_workflow(wf_id, include_tasks=True)
    tasks = [(t.reference_task_name, t.status) for t in wf.tasks]
    steps.check("status with tasks", wf.status == "RUNNING", f"{wf.status} {tasks}")
    if (await client.capabilities()).variables:
        updated = await client.update_variables(wf_id, {"approver": "ana"})
        steps.check("update variables", updated.variables.get("approver") == "ana")
    else:
        print("-- update variables: Orkes only (OSS has no endpoint); use SET_VARIABLE there")


async def _pause_resume_terminate(client: ConductorClient, wf_id: str, steps: Steps) -> None:
    await client.pause(wf_id)
    steps.check("pause", await _status(client, wf_id) == "PAUSED")
    await client.resume(wf_id)
    steps.check("resume", await _status(client, wf_id) == "RUNNING")
    await client.terminate(wf_id, reason="customer cancelled")
    steps.check("terminate", await _status(client, wf_id) == "TERMINATED")


async def _retry_restart_rerun(client: ConductorClient, wf_id: str, steps: Steps) -> None:
    await client.retry(wf_id)
    steps.check("retry (the cancelled WAIT again)", await _status(client, wf_id) == "RUNNING")
    await client.terminate(wf_id, reason="restart demo")
    await client.restart(wf_id)
    steps.check("restart from the beginning", await _status(client, wf_id) == "RUNNING")
    await client.terminate(wf_id, reason="rerun demo")
    wf = await client.get_workflow(wf_id)
    approval = next(t for t in wf.tasks if t.reference_task_name == "approval")
    await client.rerun(wf_id, re_run_from_task_id=approval.task_id, task_input={"note": "again"})
    steps.check("rerun from the 'approval' task", await _status(client, wf_id) == "RUNNING")


async def _search(client: ConductorClient, order: str, wf_id: str, steps: Steps) -> None:
    query = Query().eq("workflowType", "ops_order").eq("correlationId", order)
    # A real Conductor indexes executions asynchronously: look until it has.
    by_query = await _eventually(lambda: _found(client, wf_id, query=query))
    steps.check("search by query", by_query, str(query))
    by_text = await _eventually(lambda: _found(client, wf_id, free_text=order))
    steps.check("search by free text", by_text, order)


async def _found(client: ConductorClient, wf_id: str, **search: Any) -> bool:
    page = await client.search(**search)
    return any(hit.workflow_id == wf_id for hit in page.results)


async def _eventually(check: Callable[[], Awaitable[bool]], seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.3)
    return True


async def _status(client: ConductorClient, wf_id: str) -> str:
    return (await client.get_workflow(wf_id, include_tasks=False)).status


async def _until(
    client: ConductorClient, wf_id: str, done: Callable[[Workflow], bool], seconds: float = 30
) -> Workflow:
    deadline = time.monotonic() + seconds
    while True:
        wf = await client.get_workflow(wf_id)
        if done(wf) or time.monotonic() > deadline:
            return wf
        await asyncio.sleep(0.2)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

"""Dynamic workflow: build a workflow in code for this one execution and run it synchronously,
without registering it first.

    GATEWAY_CONDUCTOR__URL=http://127.0.0.1:8080/api python examples/dynamic_workflow.py

The shape depends on the data: one notification branch per channel the user has, run in
parallel (a fork whose JOIN is added for you), then a SWITCH on the user's plan. Exits 0 only
when the workflow COMPLETED and notified every channel.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from gateway.conductor import (
    ConductorClient,
    ConductorWorkflow,
    SetVariableTask,
    SimpleTask,
    SwitchTask,
    TaskDef,
)
from gateway.conductor.runner import TaskRunner
from gateway.conductor.worker import worker_task

URL = os.environ.get("GATEWAY_CONDUCTOR__URL", "http://127.0.0.1:8080/api")
CHANNELS = ["email", "sms", "push"]  # in a real application: read from the user's settings


@worker_task("dw_get_user")
def get_user(userId: str) -> dict[str, Any]:
    return {"email": f"{userId}@example.com", "plan": "pro"}


@worker_task("dw_notify", concurrency=4)
async def notify(channel: str, address: str) -> dict[str, Any]:
    print(f"  worker dw_notify: {channel} -> {address}")
    return {"sent": channel}


def notification_workflow(channels: list[str]) -> ConductorWorkflow:
    """A workflow made for these channels: one parallel branch each."""
    wf = ConductorWorkflow("dynamic_notify", version=1, description="built per execution")
    user = SimpleTask("dw_get_user", "get_user").input_parameter("userId", wf.input("userId"))
    branches = []
    for channel in channels:
        send = SimpleTask("dw_notify", f"notify_{channel}")
        send.input_parameters.update({"channel": channel, "address": user.output("email")})
        branches.append([send])
    plan = SwitchTask("by_plan", user.output("plan"))
    plan.switch_case("pro", [SetVariableTask("pro_perks").input_parameter("perks", True)])
    plan.default_case([SetVariableTask("no_perks").input_parameter("perks", False)])
    wf >> user >> branches >> plan
    sent = {c: "${" + f"notify_{c}.output.sent" + "}" for c in channels}
    return wf.output_parameters({"sent": sent, "perks": wf.variable("perks")})


async def main() -> int:
    async with ConductorClient(URL) as client:
        print(f"Conductor at {URL}")
        await client.register_task_defs(
            [TaskDef(name=n, retry_count=0, response_timeout_seconds=30) for n in WORKERS]
        )
        wf = notification_workflow(CHANNELS)
        print(f"built '{wf.name}' for channels {CHANNELS}; executing it inline (not registered)")
        runner = TaskRunner(client, [get_user, notify])
        workers = asyncio.create_task(runner.run())
        try:
            run = await client.execute_workflow(wf, input={"userId": "ada"}, wait_for_seconds=20)
        finally:
            runner.stop()
            await workers
    print(f"workflow {run.workflow_id}: {run.status}; output {run.output}")
    expected = {"sent": {c: c for c in CHANNELS}, "perks": True}
    if run.status != "COMPLETED" or run.output != expected:
        print(f"NOT AS EXPECTED: wanted COMPLETED with {expected}")
        return 1
    return 0


WORKERS = ["dw_get_user", "dw_notify"]

if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

"""Task configuration: register a task definition with retries, timeouts and rate limits,
update it, and watch both take effect.

    GATEWAY_CONDUCTOR__URL=http://127.0.0.1:8080/api python examples/task_configure.py

1. Register `tc_flaky` with no retries: its worker fails on the first two attempts, so the
   workflow FAILS.
2. Update the definition to `retryCount: 3` (LINEAR_BACKOFF, 1 s): the next workflow retries
   twice and COMPLETES on the third attempt.
3. With `concurrentExecLimit: 2`, three workflows run at once but the server hands out at most
   two `tc_flaky` tasks at a time, however many the worker asks for. (Conductor OSS postpones a
   task polled over the limit by 60 s, `taskExecutionPostponeDuration`, so this step takes a
   minute there.)
Exits 0 only when all three showed.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from typing import Any

from gateway.conductor import ConductorClient, ConductorWorkflow, SimpleTask, TaskDef, Workflow
from gateway.conductor.runner import TaskRunner
from gateway.conductor.worker import worker_task

URL = os.environ.get("GATEWAY_CONDUCTOR__URL", "http://127.0.0.1:8080/api")
attempts: Counter[str] = Counter()  # run id -> attempts so far
running = {"now": 0, "most": 0}


@worker_task("tc_flaky", concurrency=6)
async def flaky(run: str, fail_first: int = 0) -> dict[str, Any]:
    attempts[run] += 1
    running["now"] += 1
    running["most"] = max(running["most"], running["now"])
    try:
        await asyncio.sleep(0.3)
        if attempts[run] <= fail_first:
            raise RuntimeError(f"attempt {attempts[run]} of {run} failed (on purpose)")
        return {"attempts": attempts[run]}
    finally:
        running["now"] -= 1


TASK_DEF = TaskDef(
    name="tc_flaky",
    description="fails on purpose, then succeeds",
    retry_count=0,
    retry_logic="LINEAR_BACKOFF",
    retry_delay_seconds=1,
    backoff_scale_factor=1,
    timeout_seconds=120,
    response_timeout_seconds=60,
    poll_timeout_seconds=60,
    timeout_policy="TIME_OUT_WF",
    concurrent_exec_limit=2,
    rate_limit_per_frequency=0,
    rate_limit_frequency_in_seconds=1,
)


def workflow() -> ConductorWorkflow:
    wf = ConductorWorkflow("tc_flow", version=1)
    task = SimpleTask("tc_flaky", "flaky")
    task.input_parameters.update({"run": wf.input("run"), "fail_first": wf.input("failFirst")})
    return wf >> task


async def main() -> int:
    async with ConductorClient(URL) as client:
        print(f"Conductor at {URL}")
        await client.register_task_defs([TASK_DEF])
        stored = await client.get_task_def("tc_flaky")
        print(f"registered tc_flaky: {_policy(stored)}")
        await client.register_workflow(workflow(), overwrite=True)
        runner = TaskRunner(client, [flaky])
        workers = asyncio.create_task(runner.run())
        try:
            ok = await _show(client)
        finally:
            runner.stop()
            await workers
    return 0 if ok else 1


async def _show(client: ConductorClient) -> bool:
    before = await _run(client, "no-retries", fail_first=2)
    print(f"1. without retries: {before.status} after {_statuses(before)}")
    await client.update_task_def(TASK_DEF.model_copy(update={"retry_count": 3}))
    print(f"updated tc_flaky: {_policy(await client.get_task_def('tc_flaky'))}")
    after = await _run(client, "with-retries", fail_first=2)
    print(f"2. with 3 retries:  {after.status} after {_statuses(after)}")
    running["most"] = 0
    print("3. three at once, with concurrentExecLimit=2 ...")
    many = await asyncio.gather(*(_run(client, f"burst-{i}") for i in range(3)))
    most = running["most"]
    print(f"   {dict(Counter(w.status for w in many))}; at most {most} ran together")
    ok = before.status == "FAILED" and after.status == "COMPLETED"
    ok &= _statuses(after) == ["FAILED", "FAILED", "COMPLETED"]
    ok &= all(w.status == "COMPLETED" for w in many) and most <= 2
    print("as expected" if ok else "NOT AS EXPECTED")
    return ok


async def _run(client: ConductorClient, run: str, fail_first: int = 0) -> Workflow:
    inputs = {"run": f"{run}-{time.time_ns()}", "failFirst": fail_first}
    wf_id = await client.start_workflow("tc_flow", input=inputs)
    deadline = time.monotonic() + 120
    while True:
        wf = await client.get_workflow(wf_id)
        if wf.terminal or time.monotonic() > deadline:
            return wf
        await asyncio.sleep(0.2)


def _statuses(wf: Workflow) -> list[str | None]:
    return [t.status for t in wf.tasks]


def _policy(task_def: TaskDef) -> str:
    return (
        f"retryCount={task_def.retry_count} {task_def.retry_logic} "
        f"delay={task_def.retry_delay_seconds}s timeout={task_def.timeout_seconds}s "
        f"responseTimeout={task_def.response_timeout_seconds}s "
        f"concurrentExecLimit={task_def.concurrent_exec_limit}"
    )


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

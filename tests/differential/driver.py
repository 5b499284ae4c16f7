"""One client for both servers: the same scenario runs on the dev server and on the real
Conductor OSS, and what a user would look at is compared (task reference names and statuses in
order, workflow status and output).

Names of definitions and task queues carry a per-scenario token, because the real server is
shared by the whole test run; snapshots strip the token and replace ids with `<id>`.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson

_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
Wf = dict[str, Any]


class Driver:
    def __init__(self, url: str, token: str | None = None) -> None:
        self.http = httpx.AsyncClient(base_url=url, timeout=15)
        self.token = token or uuid.uuid4().hex[:8]

    async def close(self) -> None:
        await self.http.aclose()

    def name(self, base: str) -> str:
        return f"{base}_{self.token}"

    # --- definitions ---------------------------------------------------------------------

    async def task_defs(self, *names: str, retry_count: int = 0) -> None:
        defs = [
            {"name": self.name(n), "retryCount": retry_count, "retryDelaySeconds": 0,
             "responseTimeoutSeconds": 300, "timeoutSeconds": 0, "ownerEmail": "t@example.com"}
            for n in names
        ]  # fmt: skip
        r = await self.http.post("/metadata/taskdefs", json=defs)
        assert r.status_code == 200, r.text

    async def workflow_def(self, name: str, tasks: list[dict[str, Any]], **extra: Any) -> str:
        body = {"name": self.name(name), "version": 1, "tasks": tasks, "schemaVersion": 2,
                "ownerEmail": "t@example.com", **extra}  # fmt: skip
        r = await self.http.post("/metadata/workflow", params={"overwrite": "true"}, json=body)
        assert r.status_code == 200, r.text
        return self.name(name)

    # --- executions ----------------------------------------------------------------------

    async def start(self, name: str, input: dict[str, Any] | None = None) -> str:
        body = {"name": self.name(name), "input": input or {}}
        r = await self.http.post("/workflow", json=body)
        assert r.status_code == 200, r.text
        return r.text

    async def get(self, workflow_id: str) -> Wf:
        r = await self.http.get(f"/workflow/{workflow_id}")
        assert r.status_code == 200, r.text
        data: Wf = r.json()
        return data

    async def work(
        self,
        task: str,
        output: dict[str, Any] | None = None,
        status: str = "COMPLETED",
        reason: str | None = None,
        timeout: float = 20,
    ) -> dict[str, Any]:
        """Poll the queue of `task` until a task comes, and report `status` for it."""
        deadline = time.monotonic() + timeout
        while True:
            r = await self.http.get(f"/tasks/poll/{self.name(task)}", params={"workerid": "w"})
            if r.status_code == 200 and r.content:
                polled: dict[str, Any] = r.json()
                break
            assert time.monotonic() < deadline, f"no {task} task to poll"
            await asyncio.sleep(0.05)
        body = {
            "taskId": polled["taskId"],
            "workflowInstanceId": polled["workflowInstanceId"],
            "status": status,
            "outputData": output or {},
            "reasonForIncompletion": reason,
        }
        r = await self.http.post("/tasks", json=body)
        assert r.status_code == 200, r.text
        return polled

    async def wait(self, workflow_id: str, until: Callable[[Wf], bool], timeout: float = 20) -> Wf:
        deadline = time.monotonic() + timeout
        while True:
            wf = await self.get(workflow_id)
            if until(wf):
                return wf
            assert time.monotonic() < deadline, f"gave up waiting; now {snapshot(wf, self)}"
            await asyncio.sleep(0.05)

    async def ended(self, workflow_id: str) -> Wf:
        return await self.wait(workflow_id, lambda wf: wf["status"] not in ("RUNNING", "PAUSED"))

    async def op(self, method: str, path: str, **params: Any) -> httpx.Response:
        r = await self.http.request(method, path, params=params or None)
        assert r.status_code in (200, 204), r.text
        return r


def tasks_of(wf: Wf) -> list[tuple[str, str]]:
    return [(t["referenceTaskName"], t["status"]) for t in wf["tasks"]]


def has(ref: str, status: str) -> Callable[[Wf], bool]:
    """Until-predicate: the latest task with `ref` is in `status`."""

    def check(wf: Wf) -> bool:
        found = [t for t in wf["tasks"] if t["referenceTaskName"] == ref]
        return bool(found) and found[-1]["status"] == status

    return check


def anonymous(value: Any, driver: Driver) -> Any:
    """`value` without ids and without the scenario token."""
    text = orjson.dumps(value).decode()
    text = _ID.sub("<id>", text).replace(f"_{driver.token}", "")
    return orjson.loads(text)


def join_raced(shown: dict[str, Any], ref: str) -> dict[str, Any]:
    """`shown` (a FAILED workflow) with the JOIN `ref` as "raced" when it is FAILED, CANCELED
    or IN_PROGRESS: on the real server a JOIN (evaluated by its system-task worker) races the
    decide that fails the workflow after a branch failed: FAILED when it looks first, CANCELED
    otherwise, and once in a CI run (child_in_fork_fails) it was left IN_PROGRESS in the
    FAILED workflow. Any other status of the JOIN, or of any other task, still differs."""
    assert shown["status"] == "FAILED", shown
    raced = ("FAILED", "CANCELED", "IN_PROGRESS")
    if any(r == ref and s in raced for r, s in shown["tasks"]):
        # What the raced JOIN gathered (the workflow's output) may hold the failed branch's
        # output or not, by when it looked: seen both ways on the real server.
        failed = {r for r, s in shown["tasks"] if s == "FAILED" and r != ref}
        output = shown.get("output")
        if isinstance(output, dict):
            shown["output"] = {k: v for k, v in output.items() if k not in failed}
    shown["tasks"] = [[r, "raced" if r == ref and s in raced else s] for r, s in shown["tasks"]]
    return shown


def snapshot(wf: Wf, driver: Driver) -> dict[str, Any]:
    shown: dict[str, Any] = anonymous(
        {"status": wf["status"], "output": wf.get("output", {}), "tasks": tasks_of(wf)}, driver
    )
    return shown

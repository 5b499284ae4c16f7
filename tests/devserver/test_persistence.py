"""`gateway dev conductor --data FILE`: a dev server restarted on its file keeps definitions,
executions, queues and timers; a second server on the same file and a file from a newer
gateway are refused with a message naming the file."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.devserver.server import DevServer
from gateway.errors import ConfigError
from tests.devserver.test_cli import _start, _url

TASK_DEF = {"name": "pack", "retryCount": 0, "responseTimeoutSeconds": 300,
            "timeoutSeconds": 0, "ownerEmail": "t@example.com"}  # fmt: skip
WORKFLOW_DEF = {
    "name": "orders",
    "version": 1,
    "schemaVersion": 2,
    "ownerEmail": "t@example.com",
    "tasks": [{"name": "pack", "taskReferenceName": "pack", "type": "SIMPLE",
               "inputParameters": {"sku": "${workflow.input.sku}"}}],
}  # fmt: skip


class Served:
    """One `gateway dev conductor --data FILE` process and a client on it."""

    def __init__(self, proc: asyncio.subprocess.Process, http: httpx.AsyncClient) -> None:
        self.proc = proc
        self.http = http

    async def end(self, signum: int) -> int:
        await self.http.aclose()
        self.proc.send_signal(signum)
        return await asyncio.wait_for(self.proc.wait(), timeout=10)


async def _serve(data: Path) -> Served:
    proc = await _start("--data", str(data))
    try:
        url = await _url(proc)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    return Served(proc, httpx.AsyncClient(base_url=url, timeout=10))


@pytest.fixture
async def data(tmp_path: Path) -> AsyncIterator[Path]:
    yield tmp_path / "conductor.sqlite"


async def _ok(r: httpx.Response) -> Any:
    assert r.status_code == 200, r.text
    return r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
async def test_running_workflow_survives_a_restart_and_completes(data: Path, signum: int) -> None:
    first = await _serve(data)
    try:
        await _ok(await first.http.post("/metadata/taskdefs", json=[TASK_DEF]))
        await _ok(await first.http.post("/metadata/workflow", json=WORKFLOW_DEF))
        body = {"name": "orders", "input": {"sku": "A-1"}, "correlationId": "order-1"}
        workflow_id = await _ok(await first.http.post("/workflow", json=body))
        before = await _ok(await first.http.get(f"/workflow/{workflow_id}"))
    finally:
        code = await first.end(signum)
    assert code == (0 if signum == signal.SIGTERM else -signal.SIGKILL)

    second = await _serve(data)
    try:
        after = await _ok(await second.http.get(f"/workflow/{workflow_id}"))
        assert after["status"] == "RUNNING"
        assert after["input"] == {"sku": "A-1"} and after["correlationId"] == "order-1"
        assert after["tasks"] == before["tasks"]
        # Definitions survive, and so does the search index.
        assert (await _ok(await second.http.get("/metadata/taskdefs/pack")))["retryCount"] == 0
        got = await _ok(await second.http.get("/metadata/workflow/orders"))
        assert got["tasks"][0]["taskReferenceName"] == "pack"
        found = await _ok(
            await second.http.get("/workflow/search", params={"query": "correlationId = order-1"})
        )
        assert [s["workflowId"] for s in found["results"]] == [workflow_id]
        # The queued task is still in its queue: a worker polls it and completes it.
        task = await _ok(await second.http.get("/tasks/poll/pack", params={"workerid": "w"}))
        assert task["taskId"] == before["tasks"][0]["taskId"]
        assert task["inputData"] == {"sku": "A-1"}
        result = {"taskId": task["taskId"], "workflowInstanceId": workflow_id,
                  "status": "COMPLETED", "outputData": {"packed": True}}  # fmt: skip
        await _ok(await second.http.post("/tasks", json=result))
        done = await _ok(await second.http.get(f"/workflow/{workflow_id}"))
        assert done["status"] == "COMPLETED"
        assert [(t["referenceTaskName"], t["status"]) for t in done["tasks"]] == [
            ("pack", "COMPLETED")
        ]
    finally:
        assert await second.end(signal.SIGTERM) == 0


async def test_a_second_server_on_the_same_file_is_refused(data: Path) -> None:
    first = await _serve(data)
    try:
        await _ok(await first.http.post("/metadata/taskdefs", json=[TASK_DEF]))
        other = await _start("--data", str(data))
        _, err = await asyncio.wait_for(other.communicate(), timeout=10)
        assert other.returncode == 2
        assert f"--data {data}: it is in use by another program" in err.decode()
        # The first one still serves, its file intact.
        assert (await _ok(await first.http.get("/metadata/taskdefs/pack")))["name"] == "pack"
    finally:
        assert await first.end(signal.SIGTERM) == 0
    with contextlib.closing(sqlite3.connect(data)) as db, db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def test_a_file_from_a_newer_gateway_is_refused(data: Path) -> None:
    with contextlib.closing(sqlite3.connect(data)) as db, db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('schema_version', '99')")
    proc = await _start("--data", str(data))
    _, err = await asyncio.wait_for(proc.communicate(), timeout=10)
    assert proc.returncode == 2
    assert f"--data {data}: it was written by a newer gateway (schema version 99" in err.decode()


# --- timers, in process (a restart is `async with DevServer(data=...)` again) -----------


async def test_timers_resume_after_a_restart(data: Path) -> None:
    """A WAIT duration, a retry delay and a worker's callbackAfterSeconds, all set before the
    restart, fire after it (and not at once)."""
    retried = {**TASK_DEF, "retryCount": 1, "retryDelaySeconds": 3}
    waiting = {**WORKFLOW_DEF, "name": "later", "tasks": [
        {"name": "w", "taskReferenceName": "w", "type": "WAIT",
         "inputParameters": {"duration": "1s"}}]}  # fmt: skip
    calling = {**WORKFLOW_DEF, "name": "calls", "tasks": [
        {"name": "slow", "taskReferenceName": "slow", "type": "SIMPLE"}]}  # fmt: skip
    async with DevServer(port=0, data=data) as server, httpx.AsyncClient(base_url=server.url) as c:
        await _ok(await c.post("/metadata/taskdefs", json=[retried, {**TASK_DEF, "name": "slow"}]))
        for body in (waiting, calling, WORKFLOW_DEF):
            await _ok(await c.post("/metadata/workflow", json=body))
        wait_id = await _ok(await c.post("/workflow", json={"name": "later", "input": {}}))
        reports = [
            ("orders", "pack", {"status": "FAILED"}),
            ("calls", "slow", {"status": "IN_PROGRESS", "callbackAfterSeconds": 3}),
        ]
        for name, queue, report in reports:
            workflow_id = await _ok(await c.post("/workflow", json={"name": name, "input": {}}))
            task = await _ok(await c.get(f"/tasks/poll/{queue}"))
            body = {"taskId": task["taskId"], "workflowInstanceId": workflow_id, **report}
            await _ok(await c.post("/tasks", json=body))
    async with DevServer(port=0, data=data) as server, httpx.AsyncClient(base_url=server.url) as c:
        # The retry and the callback wait out their delays (3 s, well over a restart): nothing
        # to poll at once ...
        assert [(await c.get(f"/tasks/poll/{q}")).status_code for q in ("pack", "slow")] == [
            204,
            204,
        ]
        # ... and all three timers fire.
        due: dict[str, Any] = {}
        for _ in range(100):
            due["wait"] = (await _ok(await c.get(f"/workflow/{wait_id}")))["status"]
            for queue in ("pack", "slow"):
                polled = await c.get(f"/tasks/poll/{queue}")
                if polled.status_code == 200:
                    due[queue] = polled.json()
            if len(due) == 3 and due["wait"] == "COMPLETED":
                break
            await asyncio.sleep(0.1)
        assert due["wait"] == "COMPLETED"
        assert due["pack"]["retryCount"] == 1
        assert due["slow"]["pollCount"] == 2 and due["slow"]["status"] == "IN_PROGRESS"


async def test_removed_and_archived_workflows_stay_so_after_a_restart(data: Path) -> None:
    """Removed with archiveWorkflow (the default): gone from GET, still found by search;
    removed without: gone from both, as before the restart."""
    waiting = {**WORKFLOW_DEF, "name": "held", "tasks": [
        {"name": "w", "taskReferenceName": "w", "type": "WAIT"}]}  # fmt: skip
    async with DevServer(port=0, data=data) as server, httpx.AsyncClient(base_url=server.url) as c:
        await _ok(await c.post("/metadata/workflow", json=waiting))
        ids = [
            await _ok(await c.post("/workflow", json={"name": "held", "input": {}})) for _ in "ab"
        ]
        for workflow_id, archive in zip(ids, ("true", "false"), strict=True):
            await _ok(await c.delete(f"/workflow/{workflow_id}"))
            r = await c.delete(
                f"/workflow/{workflow_id}/remove", params={"archiveWorkflow": archive}
            )
            assert r.status_code == 200, r.text
    async with DevServer(port=0, data=data) as server, httpx.AsyncClient(base_url=server.url) as c:
        assert [(await c.get(f"/workflow/{i}")).status_code for i in ids] == [404, 404]
        found = await _ok(await c.get("/workflow/search", params={"query": "workflowType = held"}))
        assert [(s["workflowId"], s["status"]) for s in found["results"]] == [
            (ids[0], "TERMINATED")
        ]


def _control_flow_defs() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    def simple(ref: str) -> dict[str, Any]:
        return {"name": ref, "taskReferenceName": ref, "type": "SIMPLE"}

    child = {**WORKFLOW_DEF, "name": "child", "tasks": [simple("pc")]}
    parent = {**WORKFLOW_DEF, "name": "parent", "tasks": [
        {"name": "sw", "taskReferenceName": "sw", "type": "SWITCH", "evaluatorType": "value-param",
         "expression": "v", "inputParameters": {"v": "${workflow.input.k}"},
         "decisionCases": {"a": [simple("pa")]}, "defaultCase": []},
        {"name": "fk", "taskReferenceName": "fk", "type": "FORK_JOIN", "forkTasks": [
            [simple("pa2")],
            [{"name": "sub", "taskReferenceName": "sub", "type": "SUB_WORKFLOW",
              "subWorkflowParam": {"name": "child", "version": 1}}]]},
        {"name": "jn", "taskReferenceName": "jn", "type": "JOIN", "joinOn": ["pa2", "sub"]},
        {"name": "lp", "taskReferenceName": "lp", "type": "DO_WHILE",
         "loopCondition": "if ( $.lp['iteration'] < 2 ) { true; } else { false; }",
         "loopOver": [simple("pb")]},
    ]}  # fmt: skip
    task_defs = [{**TASK_DEF, "name": n} for n in ("pa", "pa2", "pb", "pc")]
    return task_defs, [child, parent]


async def _run_control_flow(data: Path | None) -> list[tuple[str, str]]:
    # (workflow status, then each task's reference name and status)
    """Run `parent` to its end, working one task at a time; with `data`, every step is
    taken by a new server on the file."""
    task_defs, workflow_defs = _control_flow_defs()
    server = DevServer(port=0, data=data)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as c:
            await _ok(await c.post("/metadata/taskdefs", json=task_defs))
            for body in workflow_defs:
                await _ok(await c.post("/metadata/workflow", json=body))
            workflow_id = await _ok(
                await c.post("/workflow", json={"name": "parent", "input": {"k": "a"}})
            )
        for _ in range(20):
            if data is not None:
                await server.stop()
                server = DevServer(port=0, data=data)
                await server.start()
            async with httpx.AsyncClient(base_url=server.url) as c:
                wf = await _ok(await c.get(f"/workflow/{workflow_id}"))
                if wf["status"] != "RUNNING":
                    tasks = [(t["referenceTaskName"], t["status"]) for t in wf["tasks"]]
                    return [("workflow", wf["status"]), *tasks]
                for name in ("pa", "pa2", "pb", "pc"):
                    polled = await c.get(f"/tasks/poll/{name}")
                    if polled.status_code == 200:
                        task = polled.json()
                        result = {"taskId": task["taskId"], "status": "COMPLETED",
                                  "workflowInstanceId": task["workflowInstanceId"]}  # fmt: skip
                        await _ok(await c.post("/tasks", json=result))
                        break
        raise AssertionError(f"not ended: {wf}")
    finally:
        await server.stop()


async def test_control_flow_runs_the_same_with_a_restart_before_every_step(data: Path) -> None:
    """SWITCH, FORK/JOIN with a SUB_WORKFLOW, DO_WHILE: each worker step on a new server."""
    restarted = await _run_control_flow(data)
    assert restarted == await _run_control_flow(None)
    assert restarted[0] == ("workflow", "COMPLETED")
    assert {("sub", "COMPLETED"), ("lp", "COMPLETED"), ("pb__2", "COMPLETED")} <= set(restarted)


async def test_a_damaged_record_is_a_clear_error_naming_the_file(data: Path) -> None:
    async with DevServer(port=0, data=data) as server, httpx.AsyncClient(base_url=server.url) as c:
        await _ok(await c.post("/metadata/workflow", json=WORKFLOW_DEF))
        await _ok(await c.post("/workflow", json={"name": "orders", "input": {}}))
    with contextlib.closing(sqlite3.connect(data)) as db, db:
        db.execute("UPDATE workflows SET body = '{\"tasks\": 1}'")
    with pytest.raises(ConfigError, match=f"--data {data}: cannot read its records"):
        await DevServer(port=0, data=data).start()
    # The failed start let go of the file: a server on it now starts (and sees the damage).
    with pytest.raises(ConfigError, match="cannot read its records"):
        await DevServer(port=0, data=data).start()

"""A dev server (OSS or Orkes flavour, over real HTTP on loopback) and a client connected to it,
with the definitions the integration tests use, plus helpers to put a workflow in each state."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from gateway.conductor import ConductorClient, TaskDef, Workflow
from gateway.conductor.worker import work_once
from gateway.devserver.server import DevServer

KEY_ID, KEY_SECRET = "it-app", "it-secret-value"
WAIT_FLOW, WORK_FLOW, TWO_STEP = "it_wait_flow", "it_work_flow", "it_two_step"
SHORT_FLOW = "it_short_flow"  # times out after one second
WORK_TASK = "it_work"


@dataclass
class Env:
    server: DevServer
    client: ConductorClient
    flavor: str

    @property
    def orkes(self) -> bool:
        return self.flavor == "orkes"

    async def running(self, **kw: Any) -> str:
        """A RUNNING workflow blocked on a WAIT task (ref `wait`)."""
        return await self.client.start_workflow(WAIT_FLOW, input={"n": 1}, **kw)

    async def paused(self) -> str:
        wf_id = await self.running()
        await self.client.pause(wf_id)
        return wf_id

    async def completed(self) -> str:
        wf_id = await self.running()
        await self.client.signal(wf_id, "COMPLETED", {"ok": True}, task_ref="wait")
        return wf_id

    async def terminated(self) -> str:
        wf_id = await self.running()
        await self.client.terminate(wf_id, reason="test")
        return wf_id

    async def failed(self) -> str:
        """A FAILED workflow: its one SIMPLE task (no retries) failed in a worker."""
        wf_id = await self.client.start_workflow(WORK_FLOW, input={"n": 2})

        def boom(_task: Any) -> dict[str, Any]:
            raise RuntimeError("worker failed")

        assert await work_once(self.client, WORK_TASK, boom) is not None
        return wf_id

    async def timed_out(self) -> str:
        """A TIMED_OUT workflow: its one-second workflow timeout fired while it waited."""
        wf_id = await self.client.start_workflow(SHORT_FLOW)
        for _ in range(100):
            if await self.status(wf_id) == "TIMED_OUT":
                return wf_id
            await asyncio.sleep(0.05)
        raise AssertionError(f"{wf_id} did not time out")

    async def in_state(self, state: str) -> str:
        if state == "unknown":
            return str(uuid.uuid4())
        wf_id: str = await getattr(self, state.lower())()
        return wf_id

    async def status(self, wf_id: str) -> str:
        wf: Workflow = await self.client.get_workflow(wf_id, include_tasks=False)
        return wf.status


def work_task_def() -> TaskDef:
    return TaskDef(
        name=WORK_TASK,
        retry_count=0,
        timeout_seconds=120,
        response_timeout_seconds=60,
        owner_email="it@example.com",
    )


async def register_definitions(client: ConductorClient) -> None:
    await client.register_task_defs([work_task_def()])
    wait = {"name": "wait", "taskReferenceName": "wait", "type": "WAIT"}
    work = {
        "name": WORK_TASK,
        "taskReferenceName": "work",
        "type": "SIMPLE",
        "inputParameters": {"x": "${workflow.input.x}"},
    }
    defs = {WAIT_FLOW: [wait], WORK_FLOW: [work], TWO_STEP: [work, wait]}
    for name, tasks in defs.items():
        await client.register_workflow_def({"name": name, "tasks": tasks}, overwrite=True)
    short = {"timeoutSeconds": 1, "timeoutPolicy": "TIME_OUT_WF", "tasks": [wait]}
    await client.register_workflow_def({"name": SHORT_FLOW, **short}, overwrite=True)


def client_for(server: DevServer, **kw: Any) -> ConductorClient:
    if server.flavor == "orkes":
        kw.setdefault("key_id", KEY_ID)
        kw.setdefault("key_secret", KEY_SECRET)
    kw.setdefault("max_retries", 2)
    kw.setdefault("backoff_base", 0.01)
    return ConductorClient(server.url, **kw)


def dev_server(flavor: str, **kw: Any) -> DevServer:
    if flavor == "orkes":
        kw.setdefault("key_id", KEY_ID)
        kw.setdefault("key_secret", KEY_SECRET)
    kw.setdefault("port", 0)
    return DevServer(flavor=flavor, **kw)  # type: ignore[arg-type]


@pytest.fixture(params=["oss", "orkes"])
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    flavor = request.param
    async with dev_server(flavor) as server, client_for(server) as client:
        await register_definitions(client)
        yield Env(server, client, flavor)

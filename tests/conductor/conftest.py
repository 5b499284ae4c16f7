"""A Conductor to test the client against, over real HTTP on loopback: the dev server in its OSS
and Orkes flavours (a fresh one per test), and the real Conductor OSS (one for the whole run,
`conductor_oss_url`). Each test gets its own definitions, under names unique to the test, so
tests sharing the real server never see each other's workflows or tasks."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from gateway.conductor import ConductorClient, Task, TaskDef, Workflow
from gateway.conductor.worker import work_once
from gateway.devserver.server import DevServer

KEY_ID, KEY_SECRET = "it-app", "it-secret-value"
WAIT_FLOW, WORK_FLOW, TWO_STEP = "it_wait_flow", "it_work_flow", "it_two_step"
SHORT_FLOW = "it_short_flow"  # times out after one second
WORK_TASK = "it_work"
TARGETS = ["oss", "orkes", "real"]  # the dev server's two flavours, and the real Conductor OSS

T = TypeVar("T")


@dataclass(frozen=True)
class Names:
    """The definitions one test uses: the shared names plus the test's own suffix."""

    suffix: str = ""

    def __call__(self, name: str) -> str:
        return name + self.suffix

    @property
    def wait_flow(self) -> str:
        return self(WAIT_FLOW)

    @property
    def work_flow(self) -> str:
        return self(WORK_FLOW)

    @property
    def two_step(self) -> str:
        return self(TWO_STEP)

    @property
    def short_flow(self) -> str:
        return self(SHORT_FLOW)

    @property
    def work_task(self) -> str:
        return self(WORK_TASK)


@dataclass
class Env:
    client: ConductorClient
    target: str  # "oss" or "orkes" (the dev server), or "real" (Conductor OSS 3.32)
    names: Names
    dev: DevServer | None = None  # None on the real server

    @property
    def flavor(self) -> str:
        """The semantics the server follows: the real server is OSS."""
        return "oss" if self.real else self.target

    @property
    def orkes(self) -> bool:
        return self.target == "orkes"

    @property
    def real(self) -> bool:
        return self.target == "real"

    async def running(self, **kw: Any) -> str:
        """A RUNNING workflow blocked on a WAIT task (ref `wait`)."""
        return await self.client.start_workflow(self.names.wait_flow, input={"n": 1}, **kw)

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
        wf_id = await self.client.start_workflow(self.names.work_flow, input={"n": 2})

        def boom(_task: Any) -> dict[str, Any]:
            raise RuntimeError("worker failed")

        await self.work(boom)
        return wf_id

    async def work(self, handler: Callable[[Task], dict[str, Any]]) -> Task:
        """Poll the work task until one is handed out and handle it (as a worker does: under
        load the real server's SQLite queue may answer a poll with nothing)."""

        async def once() -> Task | None:
            return await work_once(self.client, self.names.work_task, handler)

        return await eventually(once, f"no {self.names.work_task} task was handed out")

    async def timed_out(self) -> str:
        """A TIMED_OUT workflow: its one-second workflow timeout fired while it waited. The
        real server checks timeouts when it decides (its sweeper comes by only every 30 s), so
        ask it to decide until the timeout has fired."""
        wf_id = await self.client.start_workflow(self.names.short_flow)

        async def timed_out() -> bool:
            await self.client.decide(wf_id)
            return await self.status(wf_id) == "TIMED_OUT"

        await eventually(timed_out, f"{wf_id} did not time out", timeout=10)
        return wf_id

    async def in_state(self, state: str) -> str:
        if state == "unknown":
            return str(uuid.uuid4())
        wf_id: str = await getattr(self, state.lower())()
        return wf_id

    async def status(self, wf_id: str) -> str:
        wf: Workflow = await self.client.get_workflow(wf_id, include_tasks=False)
        return wf.status


async def eventually(check: Callable[[], Awaitable[T]], message: str, timeout: float = 10.0) -> T:
    """Poll `check` until it returns something truthy (the real server indexes searches and
    fires timers asynchronously); fail with `message` after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(message)
        await asyncio.sleep(0.05)


def work_task_def(name: str = WORK_TASK) -> TaskDef:
    return TaskDef(
        name=name,
        retry_count=0,
        timeout_seconds=120,
        response_timeout_seconds=60,
        owner_email="it@example.com",
    )


async def register_definitions(client: ConductorClient, names: Names | None = None) -> None:
    """Register (or overwrite) the integration tests' definitions, under `names`."""
    names = names or Names()
    await client.register_task_defs([work_task_def(names.work_task)])
    wait = {"name": "wait", "taskReferenceName": "wait", "type": "WAIT"}
    work = {
        "name": names.work_task,
        "taskReferenceName": "work",
        "type": "SIMPLE",
        "inputParameters": {"x": "${workflow.input.x}"},
    }
    defs = {names.wait_flow: [wait], names.work_flow: [work], names.two_step: [work, wait]}
    for name, tasks in defs.items():
        await client.register_workflow_def({"name": name, "tasks": tasks}, overwrite=True)
    short = {"timeoutSeconds": 1, "timeoutPolicy": "TIME_OUT_WF", "tasks": [wait]}
    await client.register_workflow_def({"name": names.short_flow, **short}, overwrite=True)


def client_for(server: DevServer | str, **kw: Any) -> ConductorClient:
    """A client for a dev server (with the Orkes keys it needs), or for a URL."""
    if isinstance(server, DevServer):
        if server.flavor == "orkes":
            kw.setdefault("key_id", KEY_ID)
            kw.setdefault("key_secret", KEY_SECRET)
        url = server.url
    else:
        url = server
    kw.setdefault("max_retries", 2)
    kw.setdefault("backoff_base", 0.01)
    return ConductorClient(url, **kw)


def dev_server(flavor: str, **kw: Any) -> DevServer:
    if flavor == "orkes":
        kw.setdefault("key_id", KEY_ID)
        kw.setdefault("key_secret", KEY_SECRET)
    kw.setdefault("port", 0)
    return DevServer(flavor=flavor, **kw)  # type: ignore[arg-type]


def unique_suffix() -> str:
    return "_" + uuid.uuid4().hex[:10]


@pytest.fixture(params=TARGETS)
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    target = request.param
    names = Names(unique_suffix())
    if target == "real":
        url: str = request.getfixturevalue("conductor_oss_url")
        async with client_for(url) as client:
            await register_definitions(client, names)
            yield Env(client, target, names)
        return
    async with dev_server(target) as server, client_for(server) as client:
        await register_definitions(client, names)
        yield Env(client, target, names, server)

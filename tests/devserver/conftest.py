"""Fixtures: a dev server on a free port per test, and an httpx client against it; `conductor`
is parametrised over the dev server and the real Conductor OSS (shared by the run, so tests
name their definitions with `api.name(...)`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from gateway.devserver.clock import ManualClock
from gateway.devserver.server import DevServer


class Api:
    """A thin httpx wrapper with helpers to set up definitions and workflows."""

    def __init__(self, server: DevServer | None, client: httpx.AsyncClient) -> None:
        self.server = server  # None on the real Conductor OSS
        self.http = client
        self.suffix = "_" + uuid.uuid4().hex[:10]

    @property
    def real(self) -> bool:
        return self.server is None

    def name(self, base: str) -> str:
        """A definition name unique to this test (the real server is shared by the run)."""
        return base + self.suffix

    async def until(
        self, check: Callable[[], Awaitable[Any]], message: str, timeout: float = 10
    ) -> Any:
        """Poll `check` until it returns something truthy (the real server indexes searches
        and runs system tasks asynchronously)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not (result := await check()):
            assert asyncio.get_running_loop().time() < deadline, message
            await asyncio.sleep(0.05)
        return result

    async def task_defs(self, *defs: dict[str, Any]) -> None:
        r = await self.http.post("/metadata/taskdefs", json=list(defs))
        assert r.status_code == 200, r.text

    async def workflow_def(self, name: str, tasks: list[dict[str, Any]], **extra: Any) -> None:
        body = {"name": name, "version": 1, "tasks": tasks, **extra}
        r = await self.http.post("/metadata/workflow", json=body)
        assert r.status_code == 200, r.text

    async def start(self, name: str, input: dict[str, Any] | None = None, **extra: Any) -> str:
        r = await self.http.post("/workflow", json={"name": name, "input": input or {}, **extra})
        assert r.status_code == 200, r.text
        return r.text

    async def wf(self, workflow_id: str) -> dict[str, Any]:
        r = await self.http.get(f"/workflow/{workflow_id}")
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    async def poll(self, task_type: str, **params: str) -> dict[str, Any] | None:
        r = await self.http.get(f"/tasks/poll/{task_type}", params=params)
        if r.status_code == 204:
            return None
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    async def complete(self, task: dict[str, Any], status: str = "COMPLETED", **out: Any) -> None:
        body = {
            "taskId": task["taskId"],
            "workflowInstanceId": task["workflowInstanceId"],
            "status": status,
            "outputData": out,
        }
        r = await self.http.post("/tasks", json=body)
        assert r.status_code == 200, r.text

    async def status(self, workflow_id: str) -> str:
        return str((await self.wf(workflow_id))["status"])


def simple(name: str, ref: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "taskReferenceName": ref or name, "type": "SIMPLE", **extra}


def wait(ref: str, **extra: Any) -> dict[str, Any]:
    return {"name": ref, "taskReferenceName": ref, "type": "WAIT", **extra}


async def _api(**kwargs: Any) -> AsyncIterator[Api]:
    async with (
        DevServer(port=0, **kwargs) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
    ):
        yield Api(server, client)


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async for a in _api():
        yield a


@pytest.fixture(params=["dev", "real"])
async def conductor(request: pytest.FixtureRequest) -> AsyncIterator[Api]:
    """The dev server (OSS flavour), then the real Conductor OSS."""
    if request.param == "dev":
        async for a in _api():
            yield a
        return
    url: str = request.getfixturevalue("conductor_oss_url")
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield Api(None, client)


@pytest.fixture
async def orkes() -> AsyncIterator[Api]:
    async for a in _api(flavor="orkes"):
        yield a


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def timed(clock: ManualClock) -> AsyncIterator[Api]:
    """A server whose time moves only with `clock.advance`; call `sweep()` to fire timers."""
    async for a in _api(clock=clock, sweep_interval=3600):
        yield a

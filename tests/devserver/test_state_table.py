"""Reference §7 (the state-by-operation table), cell by cell, over HTTP: on the dev server in
both flavours, and on the real Conductor OSS (the OSS table), which is the judge.

Each cell: put a workflow in a state, apply the operation, check the HTTP status, the body
shape (§1.1: empty 200, 204, text/plain ids, JSON error bodies) and the resulting status.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.devserver.clock import ManualClock
from gateway.devserver.server import DevServer

STATES = ["RUNNING", "PAUSED", "COMPLETED", "FAILED", "TIMED_OUT", "TERMINATED", "unknown"]
TERMINAL = ["COMPLETED", "FAILED", "TIMED_OUT", "TERMINATED"]


def _row(**cells: tuple[int, str | None]) -> dict[str, tuple[int, str | None]]:
    return cells


# (HTTP status, workflow status afterwards; None = not checked / unknown id)
OSS: dict[str, dict[str, tuple[int, str | None]]] = {
    "terminate": {
        "RUNNING": (200, "TERMINATED"),
        "PAUSED": (200, "TERMINATED"),
        "COMPLETED": (409, "COMPLETED"),
        "FAILED": (200, "TERMINATED"),
        "TIMED_OUT": (200, "TERMINATED"),
        "TERMINATED": (200, "TERMINATED"),
        "unknown": (404, None),
    },
    "pause": {
        "RUNNING": (200, "PAUSED"),
        "PAUSED": (200, "PAUSED"),
        **{s: (409, s) for s in TERMINAL},
        "unknown": (404, None),
    },
    "resume": {
        "RUNNING": (500, "RUNNING"),
        "PAUSED": (200, "RUNNING"),
        **{s: (500, s) for s in TERMINAL},
        "unknown": (404, None),
    },
    "retry": {
        "RUNNING": (404, "RUNNING"),
        "PAUSED": (404, "PAUSED"),
        "COMPLETED": (409, "COMPLETED"),
        "FAILED": (204, "RUNNING"),
        "TIMED_OUT": (204, "RUNNING"),
        "TERMINATED": (204, "RUNNING"),
        "unknown": (404, None),
    },
    "restart": {
        "RUNNING": (409, "RUNNING"),
        "PAUSED": (409, "PAUSED"),
        **{s: (204, "RUNNING") for s in TERMINAL},
        "unknown": (404, None),
    },
    "rerun": {
        "RUNNING": (409, "RUNNING"),
        "PAUSED": (409, "PAUSED"),
        **{s: (200, "RUNNING") for s in TERMINAL},
        # A rerun keeps createTime and its decide checks the workflow timeout first: a workflow
        # whose timeout has passed times out again at once (seen on the real server).
        "TIMED_OUT": (200, "TIMED_OUT"),
        "unknown": (404, None),
    },
    "update_by_ref": {
        "RUNNING": (200, "COMPLETED"),
        "PAUSED": (200, "PAUSED"),
        **{s: (200, s) for s in TERMINAL},
        "unknown": (200, None),
    },
}

ORKES = {
    **OSS,
    "resume": {**OSS["resume"], "RUNNING": (200, "RUNNING"), **{s: (200, s) for s in TERMINAL}},
    "update_by_ref": {
        **OSS["update_by_ref"],
        **{s: (404, s) for s in TERMINAL},
        "unknown": (404, None),
    },
    "variables": {
        "RUNNING": (200, "RUNNING"),
        "PAUSED": (200, "PAUSED"),
        "unknown": (404, None),
    },
}

TARGETS = ("oss", "orkes", "real")  # the dev server's flavours, and the real Conductor OSS
CASES = [
    (target, op, state)
    for target in TARGETS
    for op, row in (ORKES if target == "orkes" else OSS).items()
    for state in row
]


class Harness:
    """One Conductor over HTTP: a dev server whose time moves only with `clock`, or the real
    Conductor OSS (shared by the run: every harness registers its own definitions)."""

    def __init__(
        self,
        target: str,
        client: httpx.AsyncClient,
        server: DevServer | None = None,
        clock: ManualClock | None = None,
    ) -> None:
        self.target, self.http, self.server, self.clock = target, client, server, clock
        self.suffix = "_" + uuid.uuid4().hex[:10]
        self.table = self.name("table")
        self.short = self.name("table_short")  # the real server's way to TIMED_OUT

    @property
    def flavor(self) -> str:
        return "oss" if self.target == "real" else self.target

    def name(self, base: str) -> str:
        """A definition name unique to this harness."""
        return base + self.suffix

    async def setup(self) -> None:
        # A single WAIT task, and a workflow timeout so TIMED_OUT is reachable: 60 s, which
        # pass only when the dev server's manual clock is moved; on the real server a twin
        # with a one-second timeout is started for TIMED_OUT.
        for name, seconds in ((self.table, 60), (self.short, 1)):
            wf_def = {
                "name": name,
                "version": 1,
                "tasks": [{"name": "w", "taskReferenceName": "w", "type": "WAIT"}],
                "timeoutPolicy": "TIME_OUT_WF",
                "timeoutSeconds": seconds,
            }
            r = await self.http.post("/metadata/workflow", json=wf_def)
            assert r.status_code == 200, r.text

    async def in_state(self, state: str) -> str:
        if state == "unknown":
            return str(uuid.uuid4())
        short = state == "TIMED_OUT" and self.clock is None
        name = self.short if short else self.table
        r = await self.http.post("/workflow", json={"name": name, "input": {}})
        assert r.status_code == 200, r.text
        wf_id = r.text
        await self._drive(wf_id, state)
        assert await self.status(wf_id) == state
        return wf_id

    async def _drive(self, wf_id: str, state: str) -> None:
        if state == "PAUSED":
            await self.http.put(f"/workflow/{wf_id}/pause")
        elif state in ("COMPLETED", "FAILED"):
            await self.http.post(f"/tasks/{wf_id}/w/{state}", json={})
        elif state == "TERMINATED":
            await self.http.delete(f"/workflow/{wf_id}")
        elif state == "TIMED_OUT":
            await self._time_out(wf_id)

    async def _time_out(self, wf_id: str) -> None:
        """Let the workflow timeout pass, then have the server decide (PUT /workflow/decide):
        the real server's sweeper would come by only after 30 s."""
        if self.clock is not None:
            self.clock.advance(61)
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            r = await self.http.put(f"/workflow/decide/{wf_id}")
            assert r.status_code == 200, r.text
            wf = (await self.http.get(f"/workflow/{wf_id}")).json()
            if wf["status"] == "TIMED_OUT":
                seconds = 60 if self.clock else 1
                assert wf["reasonForIncompletion"].endswith(
                    f"Timeout configured as {seconds} seconds. "
                    "Timeout policy configured to TIME_OUT_WF"
                ), wf["reasonForIncompletion"]
                return
            assert asyncio.get_running_loop().time() < deadline, f"{wf_id} did not time out"
            await asyncio.sleep(0.1)

    async def status(self, wf_id: str) -> str:
        r = await self.http.get(f"/workflow/{wf_id}")
        return str(r.json()["status"])

    async def task_statuses(self, wf_id: str, expected: list[str], timeout: float = 5) -> bool:
        """Poll until the workflow's tasks have the `expected` statuses (the real server runs
        system tasks asynchronously); fail showing the last statuses seen."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            wf = (await self.http.get(f"/workflow/{wf_id}")).json()
            statuses = [t["status"] for t in wf["tasks"]]
            if statuses == expected:
                return True
            assert asyncio.get_running_loop().time() < deadline, statuses
            await asyncio.sleep(0.05)

    async def apply(self, op: str, wf_id: str) -> httpx.Response:
        w = f"/workflow/{wf_id}"
        calls: dict[str, Any] = {
            "terminate": lambda: self.http.delete(w),
            "pause": lambda: self.http.put(f"{w}/pause"),
            "resume": lambda: self.http.put(f"{w}/resume"),
            "retry": lambda: self.http.post(f"{w}/retry"),
            "restart": lambda: self.http.post(f"{w}/restart"),
            "rerun": lambda: self.http.post(f"{w}/rerun", json={}),
            "update_by_ref": lambda: self.http.post(f"/tasks/{wf_id}/w/COMPLETED", json={"k": 1}),
            "variables": lambda: self.http.post(f"{w}/variables", json={"v": 1}),
        }
        response: httpx.Response = await calls[op]()
        return response


@pytest.fixture(params=TARGETS)
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    if request.param == "real":
        url: str = request.getfixturevalue("conductor_oss_url")
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            h = Harness("real", client)
            await h.setup()
            yield h
        return
    clock = ManualClock()
    async with (
        DevServer(port=0, flavor=request.param, clock=clock, sweep_interval=3600) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        h = Harness(request.param, client, server, clock)
        await h.setup()
        yield h


def _check_body(op: str, code: int, response: httpx.Response, wf_id: str) -> None:
    """§1.1 / §8.4: bare ids as text/plain, empty 200s (no content type), 204s, JSON error
    bodies."""
    if code >= 400:
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert body["status"] == code and body["message"] and "retryable" in body
    elif code == 204:
        assert response.content == b""
    elif op == "rerun":
        assert response.headers["content-type"].startswith("text/plain")
        assert response.text == wf_id  # the same id
    elif op == "variables":
        assert response.json()["variables"]["v"] == 1
    elif op == "update_by_ref" and response.content:
        assert response.headers["content-type"].startswith("text/plain")
    else:
        assert response.content == b"" and "content-type" not in response.headers


@pytest.mark.parametrize(("harness", "op", "state"), CASES, indirect=["harness"])
async def test_section7_state_table_cell(harness: Harness, op: str, state: str) -> None:
    """§7: one cell of the state-by-operation table."""
    code, after = (ORKES if harness.flavor == "orkes" else OSS)[op][state]
    wf_id = await harness.in_state(state)
    response = await harness.apply(op, wf_id)
    assert response.status_code == code, response.text
    _check_body(op, code, response, wf_id)
    if after is not None:
        assert await harness.status(wf_id) == after


async def test_section7_update_by_ref_running_returns_task_id(harness: Harness) -> None:
    """§7 / §4.14: RUNNING -> 200 text/plain task id; nothing pending -> empty 200 (OSS)."""
    wf_id = await harness.in_state("RUNNING")
    task_id = (await harness.http.get(f"/workflow/{wf_id}")).json()["tasks"][0]["taskId"]
    r = await harness.apply("update_by_ref", wf_id)
    assert r.text == task_id
    again = await harness.apply("update_by_ref", wf_id)
    expected = 404 if harness.flavor == "orkes" else 200
    assert again.status_code == expected
    if expected == 200:
        assert again.content == b"" and "content-type" not in again.headers


async def test_section7_update_on_paused_progresses_only_after_resume(harness: Harness) -> None:
    """§7 / §4.8: a PAUSED workflow's task can be updated; the workflow moves on at resume."""
    wf_id = await harness.in_state("PAUSED")
    r = await harness.apply("update_by_ref", wf_id)
    assert r.status_code == 200 and r.text
    wf = (await harness.http.get(f"/workflow/{wf_id}")).json()
    assert wf["status"] == "PAUSED" and wf["tasks"][0]["status"] == "COMPLETED"
    assert wf["tasks"][0]["outputData"] == {"k": 1}
    await harness.http.put(f"/workflow/{wf_id}/resume")
    assert await harness.status(wf_id) == "COMPLETED"


async def test_section7_retry_restart_rerun_keep_the_workflow_id(harness: Harness) -> None:
    """§7: retry, rerun and restart keep the same workflowId and clear the reason."""
    wf_id = await harness.in_state("FAILED")
    assert (await harness.apply("retry", wf_id)).status_code == 204
    wf = (await harness.http.get(f"/workflow/{wf_id}")).json()
    assert wf["workflowId"] == wf_id and "reasonForIncompletion" not in wf
    assert wf["status"] == "RUNNING" and wf["lastRetriedTime"] > 0
    # The new WAIT attempt: the real server schedules it and starts it a moment later.
    assert wf["tasks"][0]["status"] == "FAILED"
    assert await harness.task_statuses(wf_id, ["FAILED", "IN_PROGRESS"])
    await harness.http.post(f"/tasks/{wf_id}/w/COMPLETED", json={})
    assert (await harness.apply("restart", wf_id)).status_code == 204
    wf = (await harness.http.get(f"/workflow/{wf_id}")).json()
    assert wf["endTime"] == 0 and wf["output"] == {} and len(wf["tasks"]) == 1


@pytest.mark.parametrize("harness", ["oss", "real"], indirect=True)
async def test_section7_variables_endpoint_absent_in_oss(harness: Harness) -> None:
    """§4.6 / §8.6: POST /workflow/{id}/variables does not exist in OSS (404)."""
    wf_id = await harness.in_state("RUNNING")
    r = await harness.apply("variables", wf_id)
    assert r.status_code == 404 and r.json()["status"] == 404


async def test_section4_11_restart_of_non_restartable_completed_is_404(harness: Harness) -> None:
    """§4.11: COMPLETED with restartable=false -> 404."""
    once = harness.name("once")
    wf_def = {
        "name": once,
        "restartable": False,
        "tasks": [{"name": "w", "taskReferenceName": "w", "type": "WAIT"}],
    }
    assert (await harness.http.post("/metadata/workflow", json=wf_def)).status_code == 200
    wf_id = (await harness.http.post("/workflow", json={"name": once, "input": {}})).text
    await harness.http.post(f"/tasks/{wf_id}/w/COMPLETED", json={})
    r = await harness.apply("restart", wf_id)
    assert r.status_code == 404 and "non-restartable" in r.json()["message"]

"""The engine behind the API: retries and backoff, timeouts, poll limits, pause, system tasks,
input mapping. Time is a ManualClock, so backoff is checked to the second without sleeping."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.devserver.clock import ManualClock
from tests.devserver.conftest import Api, simple, wait


async def _fail(api: Api, task: dict[str, Any], reason: str = "boom") -> None:
    body = {"taskId": task["taskId"], "status": "FAILED", "reasonForIncompletion": reason}
    assert (await api.http.post("/tasks", json=body)).status_code == 200


@pytest.mark.parametrize(
    ("logic", "expected"),
    [
        ("FIXED", [2, 2, 2]),
        ("LINEAR_BACKOFF", [6, 12, 18]),  # delay * scale(3) * (retryCount + 1)
        ("EXPONENTIAL_BACKOFF", [2, 4, 8]),  # delay * 2^retryCount
    ],
)
async def test_retry_policy_delays(
    timed: Api, clock: ManualClock, logic: str, expected: list[int]
) -> None:
    """§4.17 retryLogic: each retry waits its delay before it can be polled."""
    await timed.task_defs(
        {"name": "t", "retryCount": 3, "retryLogic": logic, "retryDelaySeconds": 2,
         "backoffScaleFactor": 3}
    )  # fmt: skip
    await timed.workflow_def("wf", [simple("t")])
    wf_id = await timed.start("wf")
    for delay in expected:
        task = await timed.poll("t")
        assert task is not None
        await _fail(timed, task)
        clock.advance(delay - 1)
        assert await timed.poll("t") is None, f"polled before the {delay}s delay"
        clock.advance(1)
        retry = await timed.wf(wf_id)
        assert retry["tasks"][-1]["callbackAfterSeconds"] == delay
        assert retry["tasks"][-1]["retriedTaskId"] == task["taskId"]
    task = await timed.poll("t")
    assert task is not None and task["retryCount"] == 3
    await _fail(timed, task, "last")
    wf = await timed.wf(wf_id)
    assert wf["status"] == "FAILED" and wf["failedReferenceTaskNames"] == ["t"]
    assert "last" in wf["reasonForIncompletion"]
    assert [t["retried"] for t in wf["tasks"]] == [True, True, True, False]


async def test_failed_with_terminal_error_is_not_retried(timed: Api) -> None:
    """§1.3: FAILED_WITH_TERMINAL_ERROR is not retriable; the workflow fails at once."""
    await timed.task_defs({"name": "t", "retryCount": 3, "retryDelaySeconds": 0})
    await timed.workflow_def("wf", [simple("t")])
    wf_id = await timed.start("wf")
    task = await timed.poll("t")
    assert task is not None
    body = {"taskId": task["taskId"], "status": "FAILED_WITH_TERMINAL_ERROR"}
    await timed.http.post("/tasks", json=body)
    assert await timed.status(wf_id) == "FAILED"


async def test_response_timeout_times_out_then_retries(timed: Api, clock: ManualClock) -> None:
    """§4.17 responseTimeoutSeconds: a task not updated in time is TIMED_OUT, then retried."""
    await timed.task_defs(
        {"name": "t", "retryCount": 1, "retryDelaySeconds": 0, "responseTimeoutSeconds": 5}
    )
    await timed.workflow_def("wf", [simple("t")])
    wf_id = await timed.start("wf")
    assert await timed.poll("t") is not None
    clock.advance(4)
    timed.server.tasks.sweep()
    assert (await timed.wf(wf_id))["tasks"][-1]["status"] == "IN_PROGRESS"
    clock.advance(1)
    timed.server.tasks.sweep()
    tasks = (await timed.wf(wf_id))["tasks"]
    assert [t["status"] for t in tasks] == ["TIMED_OUT", "SCHEDULED"]
    assert await timed.poll("t") is not None
    clock.advance(5)
    timed.server.tasks.sweep()
    wf = await timed.wf(wf_id)
    assert wf["status"] == "TIMED_OUT"  # retries exhausted on a TIMED_OUT task


@pytest.mark.parametrize(
    ("policy", "wf_status", "task_statuses"),
    [
        ("TIME_OUT_WF", "TIMED_OUT", ["TIMED_OUT"]),
        ("RETRY", "RUNNING", ["TIMED_OUT", "SCHEDULED"]),
        ("ALERT_ONLY", "RUNNING", ["IN_PROGRESS"]),
    ],
)
async def test_timeout_seconds_with_policy(
    timed: Api, clock: ManualClock, policy: str, wf_status: str, task_statuses: list[str]
) -> None:
    """§4.17 timeoutSeconds + timeoutPolicy (RETRY, TIME_OUT_WF, ALERT_ONLY) from first poll."""
    await timed.task_defs(
        {"name": "t", "retryCount": 1, "retryDelaySeconds": 0, "timeoutSeconds": 10,
         "responseTimeoutSeconds": 10, "timeoutPolicy": policy}
    )  # fmt: skip
    await timed.workflow_def("wf", [simple("t")])
    wf_id = await timed.start("wf")
    task = await timed.poll("t")
    assert task is not None
    clock.advance(6)  # keep the response timeout from firing first
    await timed.http.post("/tasks", json={"taskId": task["taskId"], "status": "IN_PROGRESS"})
    await timed.poll("t")
    clock.advance(4)
    timed.server.tasks.sweep()
    wf = await timed.wf(wf_id)
    assert wf["status"] == wf_status
    assert [t["status"] for t in wf["tasks"]] == task_statuses


async def test_workflow_timeout_time_out_wf(timed: Api, clock: ManualClock) -> None:
    """§4.18 WorkflowDef timeoutSeconds with timeoutPolicy TIME_OUT_WF."""
    await timed.workflow_def("wf", [wait("w")], timeoutSeconds=30, timeoutPolicy="TIME_OUT_WF")
    wf_id = await timed.start("wf")
    clock.advance(30)
    timed.server.tasks.sweep()
    wf = await timed.wf(wf_id)
    assert wf["status"] == "TIMED_OUT" and wf["tasks"][0]["status"] == "CANCELED"


async def test_wait_with_duration_completes_by_timer(timed: Api, clock: ManualClock) -> None:
    """§2.2 WAIT with a duration completes by timer."""
    await timed.workflow_def("wf", [wait("w", inputParameters={"duration": "2m"})])
    wf_id = await timed.start("wf")
    clock.advance(119)
    timed.server.tasks.sweep()
    assert await timed.status(wf_id) == "RUNNING"
    clock.advance(1)
    timed.server.tasks.sweep()
    assert await timed.status(wf_id) == "COMPLETED"


async def test_rate_limit_per_frequency_at_poll(timed: Api, clock: ManualClock) -> None:
    """§4.17 rateLimitPerFrequency / rateLimitFrequencyInSeconds, applied at poll."""
    await timed.task_defs(
        {"name": "t", "rateLimitPerFrequency": 2, "rateLimitFrequencyInSeconds": 10}
    )
    await timed.workflow_def("wf", [simple("t")])
    for _ in range(3):
        await timed.start("wf")
    assert await timed.poll("t") is not None
    assert await timed.poll("t") is not None
    assert await timed.poll("t") is None
    clock.advance(10)
    assert await timed.poll("t") is not None


async def test_concurrent_exec_limit_at_poll(timed: Api) -> None:
    """§4.17 concurrentExecLimit, applied at poll."""
    await timed.task_defs({"name": "t", "concurrentExecLimit": 1})
    await timed.workflow_def("wf", [simple("t")])
    await timed.start("wf")
    await timed.start("wf")
    first = await timed.poll("t")
    assert first is not None
    assert await timed.poll("t") is None
    await timed.complete(first)
    assert await timed.poll("t") is not None


async def test_pause_stops_scheduling_but_in_flight_task_finishes(api: Api) -> None:
    """§4.8: in-flight tasks can finish while PAUSED; nothing is scheduled until resume."""
    await api.workflow_def("wf", [simple("a"), simple("b")])
    wf_id = await api.start("wf")
    task = await api.poll("a")
    assert task is not None
    await api.http.put(f"/workflow/{wf_id}/pause")
    await api.complete(task)
    wf = await api.wf(wf_id)
    assert wf["status"] == "PAUSED" and [t["status"] for t in wf["tasks"]] == ["COMPLETED"]
    assert await api.poll("b") is None
    await api.http.put(f"/workflow/{wf_id}/resume")
    assert await api.poll("b") is not None


async def test_set_variable_and_output_parameters(api: Api) -> None:
    """§2.1 variables (changed by SET_VARIABLE) and §4.18 outputParameters."""
    await api.workflow_def(
        "wf",
        [
            {"name": "sv", "taskReferenceName": "sv", "type": "SET_VARIABLE",
             "inputParameters": {"total": "${workflow.input.n}", "fixed": "x"}},
            simple("t", inputParameters={"t": "${workflow.variables.total}"}),
        ],
        variables={"keep": True},
        outputParameters={"total": "${workflow.variables.total}", "res": "${t.output.r}"},
    )  # fmt: skip
    wf_id = await api.start("wf", {"n": 5})
    task = await api.poll("t")
    assert task is not None and task["inputData"] == {"t": 5}
    await api.complete(task, r="done")
    wf = await api.wf(wf_id)
    assert wf["variables"] == {"keep": True, "total": 5, "fixed": "x"}
    assert wf["output"] == {"total": 5, "res": "done"}


async def test_terminate_task_ends_workflow_with_status_and_output(api: Api) -> None:
    """§2.1: a TERMINATE task sets the status, reason and output."""
    await api.workflow_def(
        "wf",
        [
            {"name": "end", "taskReferenceName": "end", "type": "TERMINATE",
             "inputParameters": {"terminationStatus": "FAILED",
                                 "terminationReason": "bad order",
                                 "workflowOutput": {"why": "${workflow.input.why}"}}},
            simple("never"),
        ],
    )  # fmt: skip
    wf_id = await api.start("wf", {"why": "stock"})
    wf = await api.wf(wf_id)
    assert wf["status"] == "FAILED" and wf["output"] == {"why": "stock"}
    assert wf["reasonForIncompletion"] == "bad order" and len(wf["tasks"]) == 1


async def test_input_mapping_forms(api: Api) -> None:
    """§4.18 inputParameters mapping: typed whole values, paths, embedded text, missing -> null."""
    await api.workflow_def(
        "wf",
        [
            simple("a"),
            simple("b", inputParameters={
                "all": "${workflow.input}",
                "nested": "${workflow.input.order.items[1]}",
                "prev": "${a.output.y}",
                "prevAll": "${a.output}",
                "text": "order ${workflow.input.order.id} by ${a.output.y}",
                "missing": "${workflow.input.nope}",
                "list": ["${workflow.workflowId}", 3],
            }),
        ],
    )  # fmt: skip
    order = {"id": 7, "items": ["x", "y"]}
    wf_id = await api.start("wf", {"order": order})
    task_a = await api.poll("a")
    assert task_a is not None
    await api.complete(task_a, y=9)
    task_b = await api.poll("b")
    assert task_b is not None
    assert task_b["inputData"] == {
        "all": {"order": order},
        "nested": "y",
        "prev": 9,
        "prevAll": {"y": 9},
        "text": "order 7 by 9",
        "missing": None,
        "list": [wf_id, 3],
    }


async def test_optional_task_failure_completes_with_errors(api: Api) -> None:
    """§1.3 COMPLETED_WITH_ERRORS: an optional task's failure does not fail the workflow."""
    await api.task_defs({"name": "t", "retryCount": 0})
    await api.workflow_def("wf", [simple("t", optional=True), wait("w")])
    wf_id = await api.start("wf")
    task = await api.poll("t")
    assert task is not None
    await _fail(api, task)
    wf = await api.wf(wf_id)
    assert wf["status"] == "RUNNING"
    assert [t["status"] for t in wf["tasks"]] == ["COMPLETED_WITH_ERRORS", "IN_PROGRESS"]


async def test_background_sweeper_fires_timers(api: Api) -> None:
    """§2.2 WAIT duration fired by the real server's sweeper (every 0.1 s), unasked."""
    await api.workflow_def("wf", [wait("w", inputParameters={"duration": "200ms"})])
    wf_id = await api.start("wf")
    for _ in range(50):
        if await api.status(wf_id) == "COMPLETED":
            break
        await asyncio.sleep(0.05)
    assert await api.status(wf_id) == "COMPLETED"


async def test_workflow_timeout_applies_again_after_restart(timed: Api, clock: ManualClock) -> None:
    """§4.11 restart resets createTime, so the workflow timeout runs again."""
    await timed.workflow_def("wf", [wait("w")], timeoutSeconds=30, timeoutPolicy="TIME_OUT_WF")
    wf_id = await timed.start("wf")
    clock.advance(30)
    timed.server.tasks.sweep()
    assert (await timed.http.post(f"/workflow/{wf_id}/restart")).status_code == 204
    clock.advance(29)
    timed.server.tasks.sweep()
    assert await timed.status(wf_id) == "RUNNING"
    clock.advance(1)
    timed.server.tasks.sweep()
    assert await timed.status(wf_id) == "TIMED_OUT"


async def test_concurrent_starts_and_polls_hand_each_task_out_once(api: Api) -> None:
    """§4.14 under concurrency: no task is handed to two workers, none is lost."""
    await api.workflow_def("wf", [simple("t")])
    ids = await asyncio.gather(*(api.start("wf", {"i": i}) for i in range(100)))
    seen: list[str] = []

    async def worker() -> None:
        while True:
            r = await api.http.get("/tasks/poll/batch/t", params={"count": 3, "timeout": 50})
            tasks = r.json()
            if not tasks:
                return
            for task in tasks:
                seen.append(task["taskId"])
                await api.complete(task)

    await asyncio.gather(*(worker() for _ in range(8)))
    assert len(seen) == len(set(seen)) == 100
    statuses = await asyncio.gather(*(api.status(i) for i in ids))
    assert set(statuses) == {"COMPLETED"}


async def test_terminate_task_default_reason_and_invalid_status(api: Api) -> None:
    """§2.1 TERMINATE: a default reason names the task; an invalid status fails the task."""
    term = {"name": "end", "taskReferenceName": "end", "type": "TERMINATE"}
    ok = {**term, "inputParameters": {"terminationStatus": "COMPLETED", "workflowOutput": 5}}
    await api.workflow_def("ok", [ok])
    wf = await api.wf(await api.start("ok"))
    assert wf["status"] == "COMPLETED" and wf["output"] == {"output": 5}
    assert wf["reasonForIncompletion"].startswith("Workflow is COMPLETED by TERMINATE task: ")
    bad = {**term, "inputParameters": {"terminationStatus": "MAYBE"}}
    await api.workflow_def("bad", [bad])
    wf = await api.wf(await api.start("bad"))
    assert wf["status"] == "FAILED" and wf["failedReferenceTaskNames"] == ["end"]
    assert wf["tasks"][0]["reasonForIncompletion"] == "given termination status is not valid"

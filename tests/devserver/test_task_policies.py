"""Reference §4.17: a task definition's retry, timeout, concurrency and rate-limit settings
take effect, shown by what a worker sees when it polls, on the dev server and on the real
Conductor OSS. Definitions are named per test (the real server is shared by the run)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.devserver.conftest import Api, simple


async def _flow(api: Api, task_def: dict[str, Any]) -> str:
    """Register `task_def` and a one-task workflow named like it; return the name."""
    name = task_def["name"]
    await api.task_defs({"timeoutSeconds": 0, "responseTimeoutSeconds": 60, **task_def})
    await api.workflow_def(name, [simple(name, "t")])
    return name


async def _retried(api: Api, wf_id: str, attempts: int) -> dict[str, Any]:
    """The workflow once it holds `attempts` tasks (the last one the scheduled retry)."""

    async def scheduled() -> dict[str, Any] | None:
        wf = await api.wf(wf_id)
        return wf if len(wf["tasks"]) == attempts else None

    found: dict[str, Any] = await api.until(scheduled, f"no retry #{attempts - 1} scheduled")
    return found


async def _retry_delays(api: Api, logic: str, scale: int, waits: int) -> list[int]:
    """Fail the task `waits + 1` times and return the delays the server gave each retry
    (`callbackAfterSeconds` of the scheduled attempt). Each awaited retry is not handed out
    before its delay, and is handed out after it."""
    name = await _flow(
        api,
        {
            "name": api.name(f"retry_{logic.lower()}"),
            "retryCount": 2,
            "retryLogic": logic,
            "retryDelaySeconds": 1,
            "backoffScaleFactor": scale,
        },
    )
    wf_id = await api.start(name)
    task = await api.until(lambda: api.poll(name), "the first attempt was not handed out")
    delays: list[int] = []
    for attempt in range(1, waits + 2):
        failed_at = asyncio.get_running_loop().time()
        await api.complete(task, "FAILED")
        retry = (await _retried(api, wf_id, attempt + 1))["tasks"][-1]
        assert (retry["status"], retry["retryCount"]) == ("SCHEDULED", attempt)
        delays.append(retry["callbackAfterSeconds"])
        if attempt > waits:
            break
        assert await api.poll(name) is None  # not before the delay
        task = await api.until(lambda: api.poll(name), f"retry {attempt} was not handed out")
        waited = asyncio.get_running_loop().time() - failed_at
        assert waited >= delays[-1] - 0.15, (delays, waited)
        assert task["retryCount"] == attempt and task["callbackAfterSeconds"] == 0
    return delays


async def test_section4_17_retry_logic_sets_the_delay_between_attempts(conductor: Api) -> None:
    """FIXED waits retryDelaySeconds; LINEAR_BACKOFF delay x scale x attempt; EXPONENTIAL_BACKOFF
    delay x 2^(attempt-1). The three run side by side, so the test takes about three seconds."""
    fixed, exponential, linear = await asyncio.gather(
        _retry_delays(conductor, "FIXED", 1, waits=1),
        _retry_delays(conductor, "EXPONENTIAL_BACKOFF", 1, waits=1),
        _retry_delays(conductor, "LINEAR_BACKOFF", 2, waits=0),
    )
    assert (fixed, exponential, linear) == ([1, 1], [1, 2], [2])


async def test_section4_17_retry_count_then_the_workflow_fails(conductor: Api) -> None:
    api = conductor
    name = await _flow(
        api, {"name": api.name("retry_count"), "retryCount": 1, "retryDelaySeconds": 0}
    )
    wf_id = await api.start(name)
    for attempt in range(2):
        task = await api.until(lambda: api.poll(name), f"attempt {attempt} was not handed out")
        await api.complete(task, "FAILED")
    wf = await api.wf(wf_id)
    assert wf["status"] == "FAILED"
    assert [(t["status"], t["retryCount"]) for t in wf["tasks"]] == [("FAILED", 0), ("FAILED", 1)]
    assert wf["failedReferenceTaskNames"] == ["t"]


async def test_section4_17_concurrent_exec_limit_holds_back_the_next_task(conductor: Api) -> None:
    api = conductor
    name = await _flow(api, {"name": api.name("one_at_a_time"), "concurrentExecLimit": 1})
    started = {await api.start(name), await api.start(name)}
    task = await api.until(lambda: api.poll(name), "no task was handed out")
    assert await api.poll(name) is None  # one IN_PROGRESS already: the limit holds
    await api.complete(task)
    other = await api.until(lambda: api.poll(name), "the second task was not handed out")
    assert {task["workflowInstanceId"], other["workflowInstanceId"]} == started


async def test_section4_17_rate_limit_per_frequency(conductor: Api) -> None:
    """One task per 60 s window: the dev server holds back the second, as Conductor's
    Redis, Postgres and MySQL backends do. The real server here runs on SQLite, whose
    rate-limit store never limits (SqliteExecutionDAO.exceedsRateLimitPerFrequency returns
    false): it hands out both (docs/conductor-differences.md)."""
    api = conductor
    task_def = {
        "name": api.name("rate_limited"),
        "rateLimitPerFrequency": 1,
        "rateLimitFrequencyInSeconds": 60,
    }
    name = await _flow(api, task_def)
    got = (await api.http.get(f"/metadata/taskdefs/{name}")).json()
    assert (got["rateLimitPerFrequency"], got["rateLimitFrequencyInSeconds"]) == (1, 60)
    await api.start(name)
    await api.start(name)
    await api.until(lambda: api.poll(name), "no task was handed out")
    if api.real:  # the SQLite backend does not enforce rate limits: the second comes too
        await api.until(lambda: api.poll(name), "the second task was not handed out")
    else:
        assert await api.poll(name) is None


async def test_section4_17_response_timeout_times_the_task_out(conductor: Api) -> None:
    """A polled task not updated within responseTimeoutSeconds is TIMED_OUT; without retries
    the workflow is TIMED_OUT too. The real server checks when it decides, so ask it to."""
    api = conductor
    task_def = {"name": api.name("slow"), "retryCount": 0, "responseTimeoutSeconds": 1}
    name = await _flow(api, {**task_def, "timeoutSeconds": 0})
    wf_id = await api.start(name)
    task = await api.until(lambda: api.poll(name), "the task was not handed out")

    async def timed_out() -> dict[str, Any] | None:
        assert (await api.http.put(f"/workflow/decide/{wf_id}")).status_code == 200
        wf = await api.wf(wf_id)
        return wf if wf["status"] != "RUNNING" else None

    wf = await api.until(timed_out, "the task did not time out")
    assert wf["status"] == "TIMED_OUT" and wf["tasks"][0]["status"] == "TIMED_OUT"
    assert wf["tasks"][0]["reasonForIncompletion"] == (
        f"responseTimeout: 1 exceeded for the taskId: {task['taskId']} with Task Definition: {name}"
    )


async def test_section4_8_a_task_failed_while_paused_is_retried_only_after_resume(
    conductor: Api,
) -> None:
    """A paused workflow is not decided: the failed attempt's retry is scheduled at resume,
    so a polling worker gets nothing in between."""
    api = conductor
    task_def = {"name": api.name("paused_retry"), "retryCount": 1, "retryDelaySeconds": 0}
    name = await _flow(api, task_def)
    wf_id = await api.start(name)
    task = await api.until(lambda: api.poll(name), "the task was not handed out")
    assert (await api.http.put(f"/workflow/{wf_id}/pause")).status_code == 200
    await api.complete(task, "FAILED")
    wf = await api.wf(wf_id)
    assert wf["status"] == "PAUSED" and [t["status"] for t in wf["tasks"]] == ["FAILED"]
    assert await api.poll(name) is None
    assert (await api.http.put(f"/workflow/{wf_id}/resume")).status_code == 200
    retry = await api.until(lambda: api.poll(name), "the retry was not handed out after resume")
    assert retry["retryCount"] == 1 and retry["workflowInstanceId"] == wf_id

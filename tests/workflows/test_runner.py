"""The worker runner against the dev server and the real Conductor OSS: 1,000 SIMPLE tasks of
4 types with concurrency 16, failures and their reasons, domains, and stopping by SIGTERM
without losing a task."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from gateway.conductor import ConductorClient, ConductorWorkflow, SimpleTask, TaskDef, Workflow
from gateway.conductor.runner import TaskRunner
from gateway.conductor.worker import WorkerTask
from tests.workflows import workers

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def renamed(worker: WorkerTask, suffix: str, **changes: Any) -> WorkerTask:
    name = worker.task_definition_name + suffix
    return dataclasses.replace(worker, task_definition_name=name, **changes)


async def setup(client: ConductorClient, name: str, types: list[str], **task_def: Any) -> None:
    defaults = {"retry_count": 0, "retry_delay_seconds": 0, "response_timeout_seconds": 30}
    defaults.update(task_def)
    await client.register_task_defs([TaskDef(name=t, **defaults) for t in types])
    wf = ConductorWorkflow(name, version=1).timeout_seconds(0)
    for n, task_type in enumerate(types):
        task = SimpleTask(task_type, f"t{n}").input_parameter("i", wf.input("i"))
        wf >> task.input_parameter("mode", wf.input("mode"))
    await client.register_workflow(wf, overwrite=True)


async def start_many(client: ConductorClient, name: str, count: int) -> list[str]:
    starts = [client.start_workflow(name, input={"i": i}) for i in range(count)]
    return list(await asyncio.gather(*starts))


async def finished(client: ConductorClient, ids: list[str], timeout: float) -> list[Workflow]:
    """The workflows once all are terminal (asking the server to decide, which is when the
    real server checks response timeouts); fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    pending = set(ids)
    while pending:
        assert time.monotonic() < deadline, f"{len(pending)} workflow(s) still running"
        for wf_id in list(pending):
            if (await client.get_workflow(wf_id, include_tasks=False)).terminal:
                pending.discard(wf_id)
            else:
                await client.decide(wf_id)
        if pending:
            await asyncio.sleep(0.5)
    return list(await asyncio.gather(*(client.get_workflow(i) for i in ids)))


async def run_until(runner: TaskRunner, done: Any, timeout: float) -> None:
    task = asyncio.create_task(runner.run())
    try:
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        runner.stop()
        await task


async def test_a_thousand_tasks_of_four_types_complete_with_concurrency_16(
    client: ConductorClient, suffix: str
) -> None:
    steps = [renamed(w, suffix) for w in workers.steps]
    assert {w.concurrency for w in steps} == {16}
    types = [w.task_definition_name for w in steps]
    await setup(client, f"wt_four{suffix}", types)
    ids = await start_many(client, f"wt_four{suffix}", 250)
    runner = TaskRunner(client, steps)
    started = time.monotonic()
    await run_until(runner, lambda: sum(runner.reported.values()) >= 1000, timeout=240)
    print(f"1000 tasks in {time.monotonic() - started:.1f} s")
    assert runner.reported == Counter({(t, "COMPLETED"): 250 for t in types})
    flows = await finished(client, ids, timeout=30)
    assert Counter(wf.status for wf in flows) == {"COMPLETED": 250}
    last = flows[-1].tasks[-1]
    assert last.output_data == {"step": 4, "seen": 249}


async def test_a_raising_worker_fails_the_task_with_the_exception_as_reason(
    client: ConductorClient, suffix: str
) -> None:
    fails = renamed(workers.fails, suffix)
    await setup(client, f"wt_fail{suffix}", [fails.task_definition_name], retry_count=1)
    ids = [
        await client.start_workflow(f"wt_fail{suffix}", input={"mode": mode})
        for mode in ("odd", "terminal")
    ]
    runner = TaskRunner(client, [fails])
    await run_until(runner, lambda: sum(runner.reported.values()) >= 3, timeout=60)
    odd, final = await finished(client, ids, timeout=30)
    assert odd.status == "FAILED"  # retried once (retry_count=1), failed again
    assert [t.status for t in odd.tasks] == ["FAILED", "FAILED"]
    assert odd.tasks[0].reason_for_incompletion == "ValueError: cannot handle 'odd'"
    assert final.status == "FAILED"  # not retried: terminal
    assert [t.status for t in final.tasks] == ["FAILED_WITH_TERMINAL_ERROR"]
    assert final.tasks[0].reason_for_incompletion == "NonRetryableError: card declined for good"


async def test_a_worker_in_a_domain_takes_only_that_domains_tasks(
    client: ConductorClient, suffix: str
) -> None:
    plain = renamed(workers.steps[0], suffix)
    blue = dataclasses.replace(plain, domain="blue")
    name = plain.task_definition_name
    await setup(client, f"wt_domain{suffix}", [name])
    in_blue = await client.start_workflow(
        f"wt_domain{suffix}", input={"i": 1}, task_to_domain={name: "blue"}
    )
    unassigned = await client.start_workflow(f"wt_domain{suffix}", input={"i": 2})
    runner = TaskRunner(client, [blue])
    await run_until(runner, lambda: sum(runner.reported.values()) >= 1, timeout=30)
    await asyncio.sleep(0.5)  # time enough to take the other one, if it would
    assert (await client.get_workflow(in_blue)).status == "COMPLETED"
    other = await client.get_workflow(unassigned)
    assert other.status == "RUNNING" and other.tasks[0].status == "SCHEDULED"
    assert (await client.get_workflow(in_blue)).tasks[0].domain == "blue"


def worker_process(url: str, suffix: str, *extra: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "GATEWAY_CONDUCTOR__URL": url,
        "WORKERS_SUFFIX": suffix,
        "WORKERS_PAUSE": "0.4",
    }
    command = [sys.executable, "-m", "gateway", "worker", "tests.workflows.workers:slow"]
    return subprocess.Popen(
        [*command, "--worker-id", "first", *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def interrupted(
    process: subprocess.Popen[str], client: ConductorClient, ids: list[str], signals: int
) -> tuple[int, str]:
    """Send SIGTERM `signals` times once the process has completed some tasks."""
    for _ in range(200):
        done = [await client.get_workflow(i, include_tasks=False) for i in ids[:8]]
        if any(wf.status == "COMPLETED" for wf in done):
            break
        await asyncio.sleep(0.1)
    for _ in range(signals):
        process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.05)
    out, err = await asyncio.to_thread(process.communicate, timeout=60)
    assert process.returncode is not None
    return process.returncode, out + err


async def test_sigterm_finishes_the_tasks_in_hand_and_loses_none(
    client: ConductorClient, conductor_url: str, suffix: str
) -> None:
    name = workers.slow.task_definition_name + suffix
    await setup(client, f"wt_stop{suffix}", [name], response_timeout_seconds=2, retry_count=2)
    ids = await start_many(client, f"wt_stop{suffix}", 60)
    process = worker_process(conductor_url, suffix)
    code, output = await interrupted(process, client, ids, signals=1)
    assert code == 0, output
    reported = json.loads(output.strip().splitlines()[0])["reported"][name]
    assert set(reported) == {"COMPLETED"} and 0 < reported["COMPLETED"] < 60
    second = TaskRunner(client, [renamed(workers.slow, suffix, worker_id="second")])
    await run_until(second, lambda: sum(second.reported.values()) >= 60 - reported["COMPLETED"], 90)
    flows = await finished(client, ids, timeout=60)
    assert Counter(wf.status for wf in flows) == {"COMPLETED": 60}
    by_worker = Counter(t.worker_id for wf in flows for t in wf.tasks)
    assert by_worker == {"first": reported["COMPLETED"], "second": 60 - reported["COMPLETED"]}


async def test_a_second_sigterm_exits_at_once_and_conductor_redelivers_the_tasks_in_hand(
    client: ConductorClient, conductor_url: str, suffix: str
) -> None:
    name = workers.slow.task_definition_name + suffix
    await setup(client, f"wt_kill{suffix}", [name], response_timeout_seconds=2, retry_count=2)
    ids = await start_many(client, f"wt_kill{suffix}", 30)
    code, _ = await interrupted(worker_process(conductor_url, suffix), client, ids, signals=2)
    assert code == 128 + signal.SIGTERM
    second = TaskRunner(client, [renamed(workers.slow, suffix, worker_id="second")])
    run = asyncio.create_task(second.run())
    try:
        flows = await finished(client, ids, timeout=90)
    finally:
        second.stop()
        await run
    assert Counter(wf.status for wf in flows) == {"COMPLETED": 30}
    abandoned = [t for wf in flows for t in wf.tasks if t.status == "TIMED_OUT"]
    assert abandoned, "the killed worker held tasks; they time out and are handed out again"
    assert all(t.worker_id == "first" for t in abandoned)
    for wf in flows:  # each workflow's task was completed exactly once, after any time-out
        assert [t.status for t in wf.tasks][-1] == "COMPLETED"
        assert sum(t.status == "COMPLETED" for t in wf.tasks) == 1

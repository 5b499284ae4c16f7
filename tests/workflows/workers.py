"""Workers the runner tests run, in-process and with `gateway worker tests.workflows.workers:…`."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from gateway.conductor.models import Task
from gateway.conductor.worker import NonRetryableError, worker_task

SUFFIX = os.environ.get("WORKERS_SUFFIX", "")  # the test's unique task names
PAUSE = float(os.environ.get("WORKERS_PAUSE", "0"))


def _step(n: int) -> Any:
    @worker_task(f"wt_step{n}{SUFFIX}", concurrency=16)
    async def step(task: Task) -> dict[str, Any]:
        if PAUSE:
            await asyncio.sleep(PAUSE)
        return {"step": n, "seen": task.input_data.get("i")}

    return step


steps = [_step(n) for n in range(1, 5)]


@worker_task(f"wt_slow{SUFFIX}", concurrency=8)
def slow(i: int) -> dict[str, Any]:
    time.sleep(PAUSE)
    return {"i": i, "pid": os.getpid()}


@worker_task(f"wt_fails{SUFFIX}")
def fails(mode: str) -> dict[str, Any]:
    if mode == "terminal":
        raise NonRetryableError("card declined for good")
    raise ValueError(f"cannot handle {mode!r}")

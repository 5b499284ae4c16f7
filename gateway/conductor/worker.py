"""A tiny task worker for tests and demos: poll a task type, run a function, report the result.

Production workers belong in the Conductor SDKs; this exists so the demo and the tests can
drive SIMPLE tasks through the same REST calls a real worker makes.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.conductor.client import ConductorClient
from gateway.conductor.models import Task

Handler = Callable[[Task], dict[str, Any] | Awaitable[dict[str, Any]]]


async def work_once(
    client: ConductorClient, task_type: str, handler: Handler, *, worker_id: str = "gateway-worker"
) -> Task | None:
    """Poll one task; run `handler` on it; COMPLETED with its output, or FAILED with the
    exception's message. Returns the task, or None when there was nothing to do."""
    task = await client.poll_task(task_type, worker_id=worker_id)
    if task is None:
        return None
    workflow_id = task.workflow_instance_id or ""
    try:
        result = handler(task)
        output = await result if inspect.isawaitable(result) else result
    except Exception as exc:  # the worker reports any handler failure to Conductor
        await client.update_task(
            task.task_id,
            workflow_id,
            "FAILED",
            {},
            reason_for_incompletion=f"{type(exc).__name__}: {exc}",
            worker_id=worker_id,
        )
        return task
    await client.update_task(task.task_id, workflow_id, "COMPLETED", output, worker_id=worker_id)
    return task


async def run_worker(
    client: ConductorClient,
    task_type: str,
    handler: Handler,
    *,
    worker_id: str = "gateway-worker",
    poll_interval: float = 0.1,
    stop: asyncio.Event | None = None,
) -> None:
    """Poll and work until `stop` is set (or the task is cancelled)."""
    stop = stop or asyncio.Event()
    while not stop.is_set():
        if await work_once(client, task_type, handler, worker_id=worker_id) is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll_interval)

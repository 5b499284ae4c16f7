"""Workers: `@worker_task("name")` turns a function into a task worker, run by
`gateway.conductor.runner.TaskRunner` (or `gateway worker module:attr`).

```python
@worker_task("reserve_inventory", concurrency=8)
async def reserve(order_id: str, items: list[str]) -> dict[str, Any]:
    return {"reserved": len(items)}
```

The function gets the task's input by parameter name (a parameter annotated `Task`, or a lone
parameter named `task`, gets the whole task instead); it may be sync (run in a thread) or
async. A dict it returns is the task's output, any other value is `{"result": value}`. An
exception fails the task (FAILED, retried by Conductor as the task definition says) with the
exception as the reason; `NonRetryableError` fails it for good (FAILED_WITH_TERMINAL_ERROR).
Names follow conductor-python's `@worker_task` (`task_definition_name`, `domain`, `worker_id`,
`poll_interval_millis`, `poll_timeout`); `concurrency` is its `thread_count`.

`work_once` and `run_worker` below are the minimal loop the dev stack's demo uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.conductor.client import ConductorClient
from gateway.conductor.models import Task
from gateway.statuses import TaskResultStatus

Handler = Callable[[Task], dict[str, Any] | Awaitable[dict[str, Any]]]


class NonRetryableError(Exception):
    """Raise from a worker to fail the task with FAILED_WITH_TERMINAL_ERROR: Conductor does
    not retry it, whatever the task definition's retryCount."""


@dataclass(frozen=True)
class Outcome:
    """What a worker function made of one task: the status, output and reason to report."""

    status: TaskResultStatus
    output: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None


@dataclass(frozen=True)
class WorkerTask:
    """A function registered as the worker of `task_definition_name` (see `worker_task`).
    Calling it calls the function."""

    task_definition_name: str
    func: Callable[..., Any]
    concurrency: int = 1
    domain: str | None = None
    worker_id: str | None = None
    poll_interval_millis: int = 100
    poll_timeout: int = 100

    def __post_init__(self) -> None:
        if not self.task_definition_name:
            raise ValueError("worker_task needs a task definition name, e.g. @worker_task('ship')")
        if self.concurrency < 1:
            raise ValueError(
                f"worker '{self.task_definition_name}': concurrency {self.concurrency} < 1; "
                "give 1 or more tasks at a time"
            )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    @property
    def identity(self) -> str:
        return self.worker_id or socket.gethostname()

    async def execute(self, task: Task) -> Outcome:
        """Run the function on `task`; never raises (a failure is a FAILED outcome)."""
        try:
            result = await self._call(task)
        except NonRetryableError as exc:
            return Outcome("FAILED_WITH_TERMINAL_ERROR", reason=_reason(exc))
        except Exception as exc:  # the worker reports any failure to Conductor
            return Outcome("FAILED", reason=_reason(exc))
        if result is None:
            return Outcome("COMPLETED")
        return Outcome("COMPLETED", result if isinstance(result, dict) else {"result": result})

    async def _call(self, task: Task) -> Any:
        args = _arguments(self.func, task)
        if inspect.iscoroutinefunction(self.func):
            return await self.func(**args)
        result = await asyncio.to_thread(self.func, **args)
        return await result if inspect.isawaitable(result) else result


def worker_task(
    task_definition_name: str,
    *,
    concurrency: int = 1,
    domain: str | None = None,
    worker_id: str | None = None,
    poll_interval_millis: int = 100,
    poll_timeout: int = 100,
) -> Callable[[Callable[..., Any]], WorkerTask]:
    """Register the decorated function as the worker of `task_definition_name`: up to
    `concurrency` tasks at a time, polled in `domain`, with long polls of `poll_timeout` ms
    and `poll_interval_millis` between empty polls."""

    def register(func: Callable[..., Any]) -> WorkerTask:
        return WorkerTask(
            task_definition_name,
            func,
            concurrency=concurrency,
            domain=domain,
            worker_id=worker_id,
            poll_interval_millis=poll_interval_millis,
            poll_timeout=poll_timeout,
        )

    return register


def _arguments(func: Callable[..., Any], task: Task) -> dict[str, Any]:
    params = list(inspect.signature(func).parameters.values())
    whole = [p for p in params if p.annotation in (Task, "Task")]
    if whole or (len(params) == 1 and params[0].name == "task"):
        return {(whole or params)[0].name: task}
    args: dict[str, Any] = {}
    for param in params:
        if param.kind is param.VAR_KEYWORD:
            args.update({k: v for k, v in task.input_data.items() if k not in args})
        elif param.name in task.input_data:
            args[param.name] = task.input_data[param.name]
        elif param.default is param.empty:
            args[param.name] = None
    return args


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


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

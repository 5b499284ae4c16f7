"""`TaskRunner`: run `@worker_task` functions against Conductor until told to stop.

```python
async with ConductorClient(url) as client:
    runner = TaskRunner(client, [reserve, ship])
    await runner.run()           # until runner.stop() (gateway worker calls it on SIGTERM)
```

Per worker, up to `concurrency` tasks run at once. Free slots are filled with one batch poll
(`GET /tasks/poll/batch/{type}?count=<free>&timeout=<poll_timeout>`, a long poll: Conductor
answers as soon as a task is there); each result is reported with `POST /tasks/update-v2`,
which hands back the next task of the type, so a busy worker rarely polls at all. A server
without update-v2 (404) gets `POST /tasks`; so does a report whose update-v2 failed after
it may have been sent (that one is retried, being idempotent).

Stopping: `stop()` stops polling and taking next tasks; the tasks in hand finish and are
reported; then `run()` returns. Tasks still running after `drain_seconds` are cancelled and
left to Conductor, which hands them out again once their `responseTimeoutSeconds` passes. So
no task is lost: each one is either reported or redelivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Iterable

from gateway.conductor import capabilities as caps
from gateway.conductor.client import ConductorClient
from gateway.conductor.models import Task
from gateway.conductor.worker import Outcome, WorkerTask
from gateway.errors import ConductorError, NotFound

log = logging.getLogger(__name__)


class TaskRunner:
    """Polls and runs the given workers until `stop()`; counts what it reported."""

    def __init__(
        self,
        client: ConductorClient,
        workers: Iterable[WorkerTask],
        *,
        drain_seconds: float = 30.0,
    ) -> None:
        self.client = client
        self.workers = list(workers)
        if not self.workers:
            raise ValueError("TaskRunner needs at least one @worker_task function")
        names = [w.task_definition_name for w in self.workers]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"two workers for task type(s) {twice}; keep one worker per type")
        self.drain_seconds = drain_seconds
        self.reported: Counter[tuple[str, str]] = Counter()  # (task type, status) -> count
        self._stopping = asyncio.Event()
        self._v2 = True
        self._running: set[asyncio.Task[None]] = set()

    def stop(self) -> None:
        """Stop taking tasks; `run()` returns once the tasks in hand are reported."""
        self._stopping.set()

    @property
    def in_flight(self) -> int:
        return len(self._running)

    async def run(self) -> None:
        pollers = [asyncio.create_task(self._poll_loop(w)) for w in self.workers]
        try:
            await self._stopping.wait()
        finally:
            # A poll under way is let finish (what it took is run, not lost until its response
            # timeout); a poller still waiting after that waits for a free slot: cancel it.
            longest = max(w.poll_timeout for w in self.workers) / 1000 + 1.0
            _, waiting = await asyncio.wait(pollers, timeout=longest)
            for poller in waiting:
                poller.cancel()
            await asyncio.gather(*pollers, return_exceptions=True)
            await self._drain()

    async def _drain(self) -> None:
        if not self._running:
            return
        log.info("stopping: %d task(s) in hand", len(self._running))
        _, late = await asyncio.wait(set(self._running), timeout=self.drain_seconds)
        for task in late:
            task.cancel()  # Conductor redelivers it after its responseTimeoutSeconds
        if late:
            log.warning(
                "%d task(s) unfinished after %.0f s: left to Conductor",
                len(late),
                self.drain_seconds,
            )
            await asyncio.gather(*late, return_exceptions=True)

    async def _poll_loop(self, worker: WorkerTask) -> None:
        slots = asyncio.Semaphore(worker.concurrency)
        idle = worker.poll_interval_millis / 1000
        while not self._stopping.is_set():
            await slots.acquire()
            free = 1
            while free < worker.concurrency and not slots.locked():
                await slots.acquire()
                free += 1
            if self._stopping.is_set():
                break
            tasks = await self._poll(worker, free)
            for _ in range(free - len(tasks)):
                slots.release()
            for task in tasks:
                self._start(worker, task, slots)
            if not tasks:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), idle)

    async def _poll(self, worker: WorkerTask, count: int) -> list[Task]:
        try:
            return await self.client.batch_poll(
                worker.task_definition_name,
                count,
                worker.poll_timeout,
                worker_id=worker.identity,
                domain=worker.domain,
            )
        except ConductorError as exc:
            log.warning("poll of %s failed: %s", worker.task_definition_name, exc)
            return []

    def _start(self, worker: WorkerTask, task: Task, slots: asyncio.Semaphore) -> None:
        job = asyncio.create_task(self._work(worker, task))
        self._running.add(job)

        def done(job: asyncio.Task[None]) -> None:
            self._running.discard(job)
            slots.release()

        job.add_done_callback(done)

    async def _work(self, worker: WorkerTask, task: Task | None) -> None:
        """Run `task`, report it; while not stopping, run the next one update-v2 hands back."""
        while task is not None:
            outcome = await worker.execute(task)
            current = task
            try:
                task = await self._report(worker, current, outcome)
            except ConductorError as exc:  # e.g. the workflow was terminated meanwhile
                log.warning("result of task %s not accepted: %s", current.task_id, exc)
                self.reported[(worker.task_definition_name, "NOT_ACCEPTED")] += 1
                return
            self.reported[(worker.task_definition_name, outcome.status)] += 1

    async def _report(self, worker: WorkerTask, task: Task, outcome: Outcome) -> Task | None:
        args = (task.task_id, task.workflow_instance_id or "", outcome.status, outcome.output)
        reason, worker_id = outcome.reason, worker.identity
        if self._v2 and not self._stopping.is_set():
            try:
                return await self.client.update_task_v2(*args, reason, worker_id)
            except NotFound as exc:
                if not caps.route_missing(exc):
                    raise
                self._v2 = False
            except ConductorError as exc:
                if not exc.retryable:
                    raise
                log.info("update-v2 of task %s failed (%s); reporting again", task.task_id, exc)
        await self.client.update_task(*args, reason, worker_id)
        return None

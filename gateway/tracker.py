"""The tracker: polls Conductor for the workflows in the outbox and publishes their completion.

Each round takes up to `batch_size` due rows from the store and checks them with at most
`concurrency` requests in flight (`get_workflow(include_tasks=False)`: one request gives the
status and everything the event carries). A row's next poll backs off from `min_interval`,
doubling up to `max_interval`, with jitter so that workflows started together do not poll
together forever.

Delivery: the row is marked done only after the broker confirmed the event, so a crash or a
publish failure republishes it later with the same deterministic event id (at-least-once,
deduplicable). A terminal status the rule did not ask for just closes the row; a workflow
Conductor no longer knows (404) closes it with a warning.

Rows do not live forever: one tracked longer than `max_age_seconds` is closed unpolled (counted
in `expired`), and one whose event failed to publish `max_publish_attempts` times in a row is
closed (counted in `abandoned`); both with a WARNING naming the workflow, rule and destination.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from gateway.backoff import capped, jittered
from gateway.cancellation import cancel
from gateway.completion import TRANSITIONS, Mode, Trigger, build_event, encode
from gateway.conductor.models import Workflow
from gateway.errors import ConductorError, NotFound, PublishError
from gateway.plan import Destination
from gateway.settings import TrackerSettings
from gateway.sinks.base import Sink
from gateway.statuses import TERMINAL_WORKFLOW
from gateway.store.base import PendingCompletion, Store, StoreUnreachable, TrackRequest
from gateway.tracing import NO_TRACING, Tracing

log = logging.getLogger(__name__)


class WorkflowReader(Protocol):
    """The part of `ConductorClient` the tracker uses."""

    @property
    def ready(self) -> bool: ...

    async def wait_ready(self) -> None: ...

    async def get_workflow(self, workflow_id: str, include_tasks: bool = True) -> Workflow: ...


class Tracker:
    """`async with Tracker(store, client, publisher, settings.tracker):` runs it in the
    background; `run_once()` does one round (tests, tools)."""

    def __init__(
        self,
        store: Store,
        client: WorkflowReader,
        publisher: Sink,
        settings: TrackerSettings,
        *,
        mode: Mode = "structured",
        clock: Callable[[], float] = time.time,
        stop_grace: float = 10.0,
    ) -> None:
        self.store = store
        self.client = client
        self.publisher = publisher
        self.settings = settings
        self.mode = mode
        self.clock = clock
        self.stop_grace = stop_grace
        self.polls = 0  # requests sent to Conductor (for metrics and the benchmark)
        self.published = 0
        self.expired = 0  # rows closed because they outlived settings.max_age_seconds
        self.abandoned = 0  # rows closed after settings.max_publish_attempts failed publishes
        # Called with (rule, seconds from the workflow's end or change to the broker's confirm).
        self.on_published: Callable[[str, float], None] = _ignore
        self.tracing: Tracing = NO_TRACING  # spans and the traceparent of completion events
        self._limit = asyncio.Semaphore(settings.concurrency)
        self._stopping = asyncio.Event()
        self._store_out = False  # the last round found the store unreachable
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Tracker:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self.run(), name="completion-tracker")

    async def stop(self) -> None:
        """Finish the current round (up to `stop_grace`), then stop. Rows not done stay."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), self.stop_grace)
        except TimeoutError:
            await cancel(task)

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                if not self.client.ready:
                    await self._wait_ready()
                    continue
                done = await self.run_once()
                self._store_out = False
                if done < self.settings.batch_size:
                    await self._idle()
            except StoreUnreachable as exc:  # PostgreSQL out of reach: said once, not a trace
                log.log(
                    logging.DEBUG if self._store_out else logging.WARNING,
                    "completion tracker waits for the store: %s",
                    exc,
                )
                self._store_out = True
                await self._sleep(self.settings.min_interval)
            except Exception:  # one bad round must not end tracking
                log.exception("completion tracker round failed; retrying")
                await self._sleep(self.settings.min_interval)

    async def run_once(self) -> int:
        """Check every due row once (up to batch_size); return how many were checked."""
        rows = await self.store.due(self.clock(), self.settings.batch_size)
        await asyncio.gather(*(self._guarded(row) for row in rows))
        return len(rows)

    async def _wait_ready(self) -> None:
        # Conductor is down: wait for it instead of burning polls and backoff on every row.
        wait = asyncio.ensure_future(self.client.wait_ready())
        stop = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({wait, stop}, return_when=asyncio.FIRST_COMPLETED)
        for pending in (wait, stop):
            pending.cancel()

    async def _idle(self) -> None:
        next_due = await _next_due(self.store)
        delay = self.settings.min_interval
        if next_due is not None:
            delay = min(delay, max(0.02, next_due - self.clock()))
        await self._sleep(delay)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _guarded(self, row: PendingCompletion) -> None:
        async with self._limit:
            try:
                await self.check(row)
            except StoreUnreachable:
                raise  # the round says it once
            except Exception:
                log.exception("tracking workflow %s failed; will retry", row.workflow_id)
                await self._later(row, row.last_status)

    async def check(self, row: PendingCompletion) -> None:
        """Poll one workflow and act on its status."""
        age = self.clock() - row.created_at
        if row.created_at and age > self.settings.max_age_seconds:
            self.expired += 1
            await self._close(row, f"tracked for {age:.0f}s, over tracker.max_age_seconds")
            return
        self.polls += 1
        try:
            workflow = await self.client.get_workflow(row.workflow_id, include_tasks=False)
        except NotFound:
            log.warning(
                "workflow %s is gone from Conductor; dropping its completion (rule %s)",
                row.workflow_id,
                row.request.rule,
            )
            await self.store.mark_published(row.workflow_id)
            return
        except ConductorError as exc:
            log.info("polling workflow %s failed: %s; backing off", row.workflow_id, exc)
            await self._later(row, row.last_status)
            return
        await self._act(row, workflow)

    async def _act(self, row: PendingCompletion, workflow: Workflow) -> None:
        status = workflow.status
        wanted = bool(wanted_targets(row.request, status))
        if status in TERMINAL_WORKFLOW:
            if wanted and not await self._publish(row, workflow):
                await self._publish_failed(row)
                return
            await self.store.mark_published(row.workflow_id)
            return
        first_seen = wanted and status in TRANSITIONS and status != row.last_status
        if first_seen and not await self._publish(row, workflow):
            await self._publish_failed(row)  # not recorded as seen: publish next time
            return
        await self._later(row, status, 0 if first_seen else row.publish_failures)

    async def _publish_failed(self, row: PendingCompletion) -> None:
        failures = row.publish_failures + 1
        if failures < self.settings.max_publish_attempts:
            await self._later(row, row.last_status, failures)
            return
        self.abandoned += 1
        await self._close(row, f"{failures} publishes failed in a row")

    async def _close(self, row: PendingCompletion, why: str) -> None:
        """Stop tracking a row without publishing: the event is lost, so say so loudly."""
        log.warning(
            "giving up the completion of workflow %s (rule %s, destination %s): %s",
            row.workflow_id,
            row.request.rule,
            row.request.destination,
            why,
        )
        await self.store.mark_published(row.workflow_id)

    async def _publish(self, row: PendingCompletion, workflow: Workflow) -> bool:
        """Publish the event to every destination that wants its status; True once the
        broker confirmed all. After a failure the row is retried whole: a destination that
        had confirmed gets the event again, with the same id."""
        request = row.request
        event = build_event(
            workflow, Trigger(request.rule, request.source_event_id, request.source)
        )
        span = self.tracing.completion(row.workflow_id, workflow.input)
        traceparent = self.tracing.traceparent(span)
        if traceparent:  # the CloudEvents distributed-tracing extension
            event = replace(event, attributes={**event.attributes, "traceparent": traceparent})
        for spec, correlation_id in wanted_targets(request, workflow.status):
            destination = Destination.parse(spec)
            out = encode(event, destination, self.mode)
            try:
                await self.publisher.publish(
                    destination,
                    out.body,
                    key=out.key,
                    headers=out.headers,
                    correlation_id=correlation_id,
                    content_type=out.content_type,
                )
            except PublishError as exc:
                log.warning("completion %s not published, will retry: %s", event.id, exc)
                self.tracing.end(span, exc)
                return False
            self.published += 1
            changed = workflow.end_time or workflow.update_time
            if changed:
                self.on_published(request.rule, self.clock() - changed / 1000)
            log.info("published completion %s to %s", event.id, spec)
        self.tracing.end(span)
        return True

    async def _later(
        self, row: PendingCompletion, last_status: str | None, failures: int | None = None
    ) -> None:
        """Poll again after the backoff; `failures` is the publish failure streak (None: keep)."""
        await self.store.reschedule(
            row.workflow_id,
            self.clock() + self.delay(row.attempts),
            last_status,
            row.publish_failures if failures is None else failures,
        )

    def delay(self, attempts: int) -> float:
        """Seconds to the next poll after `attempts` polls: doubling, capped, jittered."""
        # A quarter of jitter: spread enough that workflows started together drift apart,
        # while a poll still comes close to the interval the settings ask for.
        interval = capped(
            attempts, initial=self.settings.min_interval, cap=self.settings.max_interval
        )
        return jittered(interval, jitter=0.25)


def wanted_targets(request: TrackRequest, status: str) -> list[tuple[str, str | None]]:
    """(destination, correlation id) of each event the row asks for at `status`: its own
    destination (a completion, or a deferred reply with the request's correlation id) and the
    rule's completion kept beside a deferred reply."""
    targets: list[tuple[str, str | None]] = []
    if status in request.statuses:
        targets.append((request.destination, request.reply_correlation_id))
    if request.also_destination is not None and status in request.also_statuses:
        targets.append((request.also_destination, None))
    return targets


async def _next_due(store: Store) -> float | None:
    """When the next row is due, if the store can tell (SqliteStore can)."""
    next_due_at: Any = getattr(store, "next_due_at", None)
    if next_due_at is None:
        return None
    value: float | None = await next_due_at()
    return value


__all__ = ["Tracker", "WorkflowReader"]


def _ignore(_rule: str, _seconds: float) -> None:
    """No-op on_published: a tracker built without metrics (tests, tools)."""

"""Tracker logic with a real SqliteStore, a stand-in Conductor and a recording sink.

The end-to-end tests (test_tracker_e2e.py) use the real client, dev server and brokers; this file
pins down the decisions: publish-then-mark, retries, backoff, 404, readiness.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.conductor.models import Workflow
from gateway.errors import ConductorUnavailable, NotFound
from gateway.settings import TrackerSettings
from gateway.store.base import StoreUnreachable, TrackRequest
from gateway.store.sqlite import SqliteStore
from gateway.tracker import Tracker
from tests.fakes import RecordingSink

SETTINGS = TrackerSettings(min_interval=0.05, max_interval=0.4, concurrency=4, batch_size=50)


END = 1_764_201_600_000  # the fake's end time, the run mark in terminal event ids


class FakeConductor:
    def __init__(self) -> None:
        self.status: dict[str, str] = {}
        self.errors: dict[str, Exception] = {}
        self.ready = True
        self.became_ready = asyncio.Event()
        self.calls = 0

    async def wait_ready(self) -> None:
        await self.became_ready.wait()

    async def get_workflow(self, workflow_id: str, include_tasks: bool = True) -> Workflow:
        self.calls += 1
        if workflow_id in self.errors:
            raise self.errors[workflow_id]
        return Workflow(
            workflow_id=workflow_id,
            workflow_name="flow",
            status=self.status[workflow_id],
            end_time=END,
        )


def request(statuses: set[str] | None = None, reply: str | None = None) -> TrackRequest:
    return TrackRequest(
        destination="amqp:done",
        statuses=frozenset(statuses or {"COMPLETED", "FAILED", "TIMED_OUT", "TERMINATED"}),
        rule="r",
        source_event_id="amqp:in:m1",
        source="amqp:in",
        reply_correlation_id=reply,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "g.db", first_poll_delay=0.0) as s:
        yield s


async def test_terminal_status_is_published_once_then_the_row_is_done(store: SqliteStore) -> None:
    conductor, sink = FakeConductor(), RecordingSink()
    conductor.status["wf"] = "FAILED"
    await store.track("wf", request(reply="corr-1"))
    tracker = Tracker(store, conductor, sink, SETTINGS)
    assert await tracker.run_once() == 1
    [(dest, event, corr)] = sink.sent
    assert (dest, event["id"], corr) == ("amqp:done", f"wf:FAILED:{END}", "corr-1")
    assert await store.pending_count() == 0


async def test_unrequested_terminal_status_closes_the_row_silently(store: SqliteStore) -> None:
    conductor, sink = FakeConductor(), RecordingSink()
    conductor.status["wf"] = "TERMINATED"
    await store.track("wf", request({"COMPLETED"}))
    await Tracker(store, conductor, sink, SETTINGS).run_once()
    assert sink.sent == [] and await store.pending_count() == 0


async def test_running_workflow_is_polled_later_with_growing_delay(store: SqliteStore) -> None:
    conductor, sink = FakeConductor(), RecordingSink()
    conductor.status["wf"] = "RUNNING"
    await store.track("wf", request())
    now = time.time()  # a frozen clock: the assertion cannot race a loaded machine
    tracker = Tracker(store, conductor, sink, SETTINGS, clock=lambda: now)
    await tracker.run_once()
    [row] = await store.due(now + 10, 10)
    assert row.attempts == 1 and row.last_status == "RUNNING"
    first_delay = SETTINGS.min_interval  # attempts=0: min_interval, jittered down to 75 %
    assert now + 0.75 * first_delay <= row.next_poll_at <= now + first_delay
    assert sink.sent == []
    delays = [tracker.delay(n) for n in range(12)]
    assert all(d <= SETTINGS.max_interval for d in delays)
    assert delays[-1] >= 0.75 * SETTINGS.max_interval


async def test_publish_failure_keeps_the_row_and_a_later_round_publishes(
    store: SqliteStore,
) -> None:
    conductor, sink = FakeConductor(), RecordingSink()
    conductor.status["wf"] = "COMPLETED"
    await store.track("wf", request())
    tracker = Tracker(store, conductor, sink, SETTINGS)
    sink.failing = True
    await tracker.run_once()
    assert await store.pending_count() == 1
    sink.failing = False
    await asyncio.sleep(SETTINGS.min_interval)
    await tracker.run_once()
    assert [e["id"] for _, e, _ in sink.sent] == [f"wf:COMPLETED:{END}"]
    assert await store.pending_count() == 0


async def test_workflow_gone_from_conductor_is_dropped_with_a_warning(
    store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    conductor, sink = FakeConductor(), RecordingSink()
    conductor.errors["wf"] = NotFound("no such workflow", status=404)
    await store.track("wf", request())
    with caplog.at_level(logging.WARNING, logger="gateway.tracker"):
        await Tracker(store, conductor, sink, SETTINGS).run_once()
    assert await store.pending_count() == 0
    assert "wf is gone from Conductor" in caplog.text


async def test_transient_conductor_error_keeps_the_row(store: SqliteStore) -> None:
    conductor, sink = FakeConductor(), RecordingSink()
    conductor.errors["wf"] = ConductorUnavailable("connection refused")
    await store.track("wf", request())
    await Tracker(store, conductor, sink, SETTINGS).run_once()
    [row] = await store.due(time.time() + 10, 10)
    assert row.attempts == 1 and row.last_status is None


async def test_paused_transition_is_published_once_when_requested(store: SqliteStore) -> None:
    conductor, sink = FakeConductor(), RecordingSink()
    conductor.status["wf"] = "PAUSED"
    await store.track("wf", request({"PAUSED", "COMPLETED"}))
    tracker = Tracker(store, conductor, sink, SETTINGS)
    for _ in range(3):
        await tracker.run_once()
        await asyncio.sleep(SETTINGS.max_interval)
    conductor.status["wf"] = "COMPLETED"
    await tracker.run_once()
    assert [e["id"] for _, e, _ in sink.sent] == ["wf:PAUSED", f"wf:COMPLETED:{END}"]


async def test_background_tracker_waits_while_conductor_is_not_ready(store: SqliteStore) -> None:
    conductor, sink = FakeConductor(), RecordingSink()
    conductor.ready = False
    conductor.status["wf"] = "COMPLETED"
    await store.track("wf", request())
    async with Tracker(store, conductor, sink, SETTINGS):
        await asyncio.sleep(0.3)
        assert conductor.calls == 0  # no polls burnt while Conductor is down
        conductor.ready = True
        conductor.became_ready.set()
        async with asyncio.timeout(5):
            while not sink.sent:
                await asyncio.sleep(0.02)
    assert [e["id"] for _, e, _ in sink.sent] == [f"wf:COMPLETED:{END}"]
    assert await store.pending_count() == 0


class UnreachableStore:
    """The store's own answer while PostgreSQL is out of reach, for a while."""

    def __init__(self, store: SqliteStore, failures: int) -> None:
        self._store, self.failures = store, failures

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def due(self, now: float, limit: int) -> object:
        if self.failures > 0:
            self.failures -= 1
            raise StoreUnreachable("PostgreSQL at db:5432 did not answer")
        return await self._store.due(now, limit)


async def test_an_unreachable_store_is_said_once_then_tracking_goes_on(
    store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    conductor, sink = FakeConductor(), RecordingSink()
    conductor.status["wf"] = "COMPLETED"
    await store.track("wf", request())
    out = UnreachableStore(store, failures=5)
    with caplog.at_level(logging.DEBUG, logger="gateway.tracker"):
        async with Tracker(out, conductor, sink, SETTINGS):  # type: ignore[arg-type]
            async with asyncio.timeout(5):
                while not sink.sent:
                    await asyncio.sleep(0.02)
    waits = [r for r in caplog.records if "waits for the store" in r.getMessage()]
    assert [r.levelno for r in waits] == [logging.WARNING] + [logging.DEBUG] * 4
    assert all(r.exc_info is None for r in caplog.records)  # no traceback per round
    assert [e["id"] for _, e, _ in sink.sent] == [f"wf:COMPLETED:{END}"]


async def test_a_row_older_than_max_age_is_closed_unpolled_with_a_warning(
    store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    conductor, sink = FakeConductor(), RecordingSink()
    conductor.status["wf-old"] = "RUNNING"
    await store.track("wf-old", request())
    settings = SETTINGS.model_copy(update={"max_age_seconds": 3600.0})
    later = time.time() + 3601  # an hour and a second after it was tracked
    tracker = Tracker(store, conductor, sink, settings, clock=lambda: later)
    with caplog.at_level(logging.WARNING, logger="gateway.tracker"):
        await tracker.run_once()
    assert tracker.expired == 1
    assert conductor.calls == 0 and sink.sent == []
    assert await store.pending_count() == 0
    [first] = [r for r in caplog.records if "wf-old" in r.getMessage()]
    assert first.levelno == logging.WARNING
    assert "rule r" in first.getMessage() and "amqp:done" in first.getMessage()
    assert "max_age_seconds" in first.getMessage()


async def test_a_row_younger_than_max_age_is_still_polled(store: SqliteStore) -> None:
    conductor, sink = FakeConductor(), RecordingSink()
    conductor.status["wf"] = "RUNNING"
    await store.track("wf", request())
    settings = SETTINGS.model_copy(update={"max_age_seconds": 3600.0})
    soon = time.time() + 3500
    tracker = Tracker(store, conductor, sink, settings, clock=lambda: soon)
    await tracker.run_once()
    assert tracker.expired == 0 and conductor.calls == 1
    assert await store.pending_count() == 1


async def test_a_completion_that_never_publishes_is_abandoned_after_max_attempts(
    store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    conductor, sink = FakeConductor(), RecordingSink()
    conductor.status["wf"] = "COMPLETED"
    await store.track("wf", request())
    settings = SETTINGS.model_copy(update={"max_publish_attempts": 3})
    clock = [time.time()]
    tracker = Tracker(store, conductor, sink, settings, clock=lambda: clock[0])
    sink.failing = True
    with caplog.at_level(logging.WARNING, logger="gateway.tracker"):
        for attempt in range(1, 4):
            assert await tracker.run_once() == 1
            clock[0] += settings.max_interval + 1  # the row is due again
            if attempt < 3:
                [row] = await store.due(clock[0], 10)
                assert row.publish_failures == attempt
    assert tracker.abandoned == 1 and tracker.published == 0
    assert await store.pending_count() == 0
    [warning] = [r for r in caplog.records if "giving up" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    message = warning.getMessage()
    assert "wf" in message and "rule r" in message and "amqp:done" in message
    assert "3 publishes failed" in message


async def test_a_successful_publish_resets_the_failure_streak(store: SqliteStore) -> None:
    conductor, sink = FakeConductor(), RecordingSink()
    conductor.status["wf"] = "PAUSED"
    await store.track("wf", request({"PAUSED", "COMPLETED"}))
    settings = SETTINGS.model_copy(update={"max_publish_attempts": 2})
    clock = [time.time()]
    tracker = Tracker(store, conductor, sink, settings, clock=lambda: clock[0])
    sink.failing = True
    await tracker.run_once()  # PAUSED not published: streak 1
    clock[0] += settings.max_interval + 1
    sink.failing = False
    await tracker.run_once()  # PAUSED published: streak back to 0
    clock[0] += settings.max_interval + 1
    [row] = await store.due(clock[0], 10)
    assert row.publish_failures == 0 and row.last_status == "PAUSED"
    conductor.status["wf"] = "COMPLETED"
    sink.failing = True
    await tracker.run_once()  # one failure only: not abandoned at max 2
    assert tracker.abandoned == 0 and await store.pending_count() == 1


def with_completion(reply: TrackRequest) -> TrackRequest:
    """A deferred reply's row that also carries the rule's completion (on COMPLETED only)."""
    return replace(reply, also_destination="kafka:status", also_statuses=frozenset({"COMPLETED"}))


async def test_a_deferred_reply_row_also_publishes_the_rule_s_completion(
    store: SqliteStore,
) -> None:
    conductor, sink = FakeConductor(), RecordingSink(failures=1)
    conductor.status["wf"] = "COMPLETED"
    await store.track("wf", with_completion(request(reply="corr-1")))
    tracker = Tracker(store, conductor, sink, SETTINGS)
    await tracker.run_once()  # the reply is not confirmed: the row stays, nothing is lost
    assert sink.sent == [] and await store.pending_count() == 1
    await store.reschedule("wf", 0.0, None, 1)
    await tracker.run_once()
    event_id = f"wf:COMPLETED:{END}"
    assert [(dest, event["id"], corr) for dest, event, corr in sink.sent] == [
        ("amqp:done", event_id, "corr-1"),  # the answer, with the request's correlation id
        ("kafka:status", event_id, None),  # the completion
    ]
    assert await store.pending_count() == 0


async def test_the_completion_beside_a_reply_keeps_its_own_statuses(store: SqliteStore) -> None:
    conductor, sink = FakeConductor(), RecordingSink()
    conductor.status["wf"] = "TERMINATED"
    await store.track("wf", with_completion(request(reply="corr-1")))
    await Tracker(store, conductor, sink, SETTINGS).run_once()
    assert [dest for dest, _, _ in sink.sent] == ["amqp:done"]
    assert await store.pending_count() == 0

"""SqliteStore: dedupe records, the outbox, atomicity and durability across reopen."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from gateway.store.base import TrackRequest
from gateway.store.sqlite import SCHEMA_VERSION, SqliteStore

TRACK = TrackRequest(
    destination="kafka:done",
    statuses=frozenset({"COMPLETED", "FAILED"}),
    rule="orders",
    source_event_id="kafka:orders:0:7",
    source="kafka:orders",
)


async def test_record_start_is_idempotent_and_returns_the_first_id(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "g.db") as store:
        assert await store.find_start("k1") is None
        assert await store.record_start("k1", "wf-a", "orders", TRACK) == "wf-a"
        # A redelivery that started another workflow gets the first id back, and no second row.
        assert await store.record_start("k1", "wf-b", "orders", TRACK) == "wf-a"
        assert await store.find_start("k1") == "wf-a"
        assert await store.pending_count() == 1


async def test_outbox_row_roundtrips_every_field(tmp_path: Path) -> None:
    track = TrackRequest(
        destination="amqp:replies",
        statuses=frozenset({"COMPLETED", "TIMED_OUT"}),
        rule="rpc",
        source_event_id="amqp:requests:m-1",
        source="amqp:requests",
        reply_correlation_id="corr-9",
    )
    async with SqliteStore(tmp_path / "g.db", first_poll_delay=0.0) as store:
        await store.track("wf-1", track)
        [row] = await store.due(time.time() + 1, 10)
    assert row.workflow_id == "wf-1"
    assert row.request == track
    assert row.attempts == 0
    assert row.last_status is None


async def test_due_orders_by_next_poll_and_honours_limit(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "g.db", first_poll_delay=0.0) as store:
        for i in range(5):
            await store.record_start(f"k{i}", f"wf-{i}", "orders", TRACK)
        now = time.time()
        await store.reschedule("wf-0", now + 60, "RUNNING")
        await store.reschedule("wf-3", now - 100, "RUNNING")
        due = await store.due(now + 1, 3)
        assert [r.workflow_id for r in due] == ["wf-3", "wf-1", "wf-2"]
        assert due[0].attempts == 1 and due[0].last_status == "RUNNING"
        assert "wf-0" not in [r.workflow_id for r in await store.due(now + 1, 100)]
        await store.mark_published("wf-3")
        assert await store.pending_count() == 4
        assert await store.next_due_at() is not None


async def test_record_without_track_writes_no_outbox_row(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "g.db") as store:
        await store.record_start("k", "wf", "orders")
        assert await store.pending_count() == 0


async def test_everything_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "g.db"
    async with SqliteStore(path, first_poll_delay=0.0) as store:
        await asyncio.gather(
            *(store.record_start(f"k{i}", f"wf-{i}", "orders", TRACK) for i in range(300))
        )
        await store.mark_published("wf-7")
    async with SqliteStore(path) as store:
        assert await store.find_start("k299") == "wf-299"
        assert await store.pending_count() == 299
        ids = {r.workflow_id for r in await store.due(time.time() + 1, 1000)}
        assert "wf-7" not in ids and len(ids) == 299


async def test_concurrent_writes_of_one_key_keep_one_winner(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "g.db") as store:
        results = await asyncio.gather(
            *(store.record_start("same", f"wf-{i}", "orders", TRACK) for i in range(50))
        )
        assert set(results) == {"wf-0"}
        assert await store.pending_count() == 1


async def test_schema_is_wal_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    async with SqliteStore(path):
        pass
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    db.close()


async def test_a_newer_schema_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    async with SqliteStore(path):
        pass
    with sqlite3.connect(path) as db:
        db.execute("UPDATE schema_version SET version = 99")
    db.close()
    threads = set(threading.enumerate())
    store = SqliteStore(path)
    with pytest.raises(RuntimeError, match="schema version 99"):
        await store.open()
    # The failed open closed its connection: no connection thread is left running, and the
    # store is plainly not open (no close() needed).
    for thread in set(threading.enumerate()) - threads:
        thread.join(timeout=5)  # a closed connection's thread ends right after close()
        assert not thread.is_alive(), thread
    with pytest.raises(RuntimeError, match="not open"):
        await store.find_start("k")


async def test_a_version_1_file_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    with sqlite3.connect(path) as db:  # the schema a gateway with version 1 wrote
        db.executescript(
            """
            CREATE TABLE schema_version (version INTEGER NOT NULL);
            INSERT INTO schema_version VALUES (1);
            CREATE TABLE starts (key TEXT PRIMARY KEY, workflow_id TEXT NOT NULL,
                rule TEXT NOT NULL, created_at REAL NOT NULL);
            CREATE TABLE outbox (workflow_id TEXT PRIMARY KEY, destination TEXT NOT NULL,
                statuses TEXT NOT NULL, rule TEXT NOT NULL, source_event_id TEXT NOT NULL,
                source TEXT NOT NULL, reply_correlation_id TEXT,
                attempts INTEGER NOT NULL DEFAULT 0, next_poll_at REAL NOT NULL,
                last_status TEXT, created_at REAL NOT NULL);
            INSERT INTO outbox VALUES ('wf-1', 'kafka:done', 'COMPLETED', 'orders',
                'kafka:orders:0:7', 'kafka:orders', NULL, 4, 0, 'RUNNING', 123.0);
            """
        )
    db.close()
    async with SqliteStore(path) as store:
        [row] = await store.due(time.time(), 10)
        assert (row.workflow_id, row.attempts, row.created_at) == ("wf-1", 4, 123.0)
        assert row.publish_failures == 0
        await store.reschedule("wf-1", 0.0, "RUNNING", publish_failures=5)
        [row] = await store.due(time.time(), 10)
        assert row.publish_failures == 5
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    db.close()


async def test_a_failing_write_does_not_fail_its_batch_neighbours(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "g.db") as store:

        def broken(db: object) -> None:
            raise sqlite3.OperationalError("boom")

        results = await asyncio.gather(
            store.record_start("a", "wf-a", "r", TRACK),
            store._write(broken),
            store.record_start("b", "wf-b", "r", TRACK),
            return_exceptions=True,
        )
        assert results[0] == "wf-a" and results[2] == "wf-b"
        assert isinstance(results[1], sqlite3.OperationalError)
        assert await store.pending_count() == 2


async def test_use_before_open_names_the_fix(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "g.db")
    with pytest.raises(RuntimeError, match="not open"):
        await store.record_start("k", "wf", "r")

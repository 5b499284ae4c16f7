"""The outbox row of a deferred reply keeps the rule's completion beside it (issue 19), on
SQLite and PostgreSQL, and a store written by the previous schema gains the column."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gateway.store.base import TrackRequest
from gateway.store.postgres import PostgresStore
from gateway.store.sqlite import SCHEMA_VERSION, SqliteStore

REPLY_AND_COMPLETION = TrackRequest(
    destination="amqp:amq.gen-reply",
    statuses=frozenset({"COMPLETED", "FAILED", "TIMED_OUT", "TERMINATED"}),
    rule="orders",
    source_event_id="amqp:orders:m-1",
    source="amqp:orders",
    reply_correlation_id="corr-1",
    also_destination="kafka:order-status",
    also_statuses=frozenset({"COMPLETED", "FAILED"}),
)
COMPLETION_ONLY = TrackRequest("kafka:order-status", frozenset({"COMPLETED"}), "o", "e", "s")


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        return lambda: SqliteStore(tmp_path / "g.db", first_poll_delay=0.0)
    dsn = request.getfixturevalue("postgres_dsn")
    return lambda: PostgresStore(dsn, first_poll_delay=0.0)


async def test_the_completion_beside_a_reply_survives_a_restart(make_store: Any) -> None:
    async with make_store() as store:
        await store.record_start("k-1", "wf-1", "orders", REPLY_AND_COMPLETION)
        await store.track("wf-2", COMPLETION_ONLY)
    async with make_store() as store:  # what a restarted gateway reads
        rows = {row.workflow_id: row.request for row in await store.due(1e12, 10)}
    assert rows == {"wf-1": REPLY_AND_COMPLETION, "wf-2": COMPLETION_ONLY}


async def test_a_version_2_sqlite_file_gains_the_column(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "g.db", first_poll_delay=0.0) as store:
        await store.track("wf-old", COMPLETION_ONLY)
    with sqlite3.connect(tmp_path / "g.db") as db:  # what the gateway before it left behind
        db.execute("ALTER TABLE outbox DROP COLUMN also_publish")
        db.execute("UPDATE schema_version SET version = 2")
    async with SqliteStore(tmp_path / "g.db", first_poll_delay=0.0) as store:
        await store.track("wf-new", REPLY_AND_COMPLETION)
        rows = {row.workflow_id: row.request for row in await store.due(1e12, 10)}
    assert rows == {"wf-old": COMPLETION_ONLY, "wf-new": REPLY_AND_COMPLETION}
    with sqlite3.connect(tmp_path / "g.db") as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]

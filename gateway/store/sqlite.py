"""The default store: one SQLite file in WAL mode, written with group commit.

Durability: `synchronous=FULL` by default. In WAL mode NORMAL already survives a crash of the
gateway process (kill -9), but a power loss or kernel crash may roll back the last commits; the
gateway acks or commits the source delivery right after `record_start` returns, so a rolled-back
outbox row would be a lost completion event. FULL fsyncs the WAL on every commit, and its cost
is paid once per batch: every write goes through one writer task that runs all writes queued at
that moment in ONE transaction (group commit), and each caller's await returns only after that
transaction committed. Concurrent dispatch therefore gets thousands of durable writes per second
(see bench/store.py) while a lone write still sees its own commit.

Reads use a second connection: WAL lets them run beside the writer and see committed data only.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

import aiosqlite

from gateway.store.base import PendingCompletion, TrackRequest
from gateway.store.rows import OUTBOX_COLUMNS, outbox_row, pending

log = logging.getLogger(__name__)

T = TypeVar("T")
Op = Callable[[aiosqlite.Connection], Awaitable[Any]]

SCHEMA_VERSION = 2  # 2: outbox.publish_failures

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS starts (
    key         TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    rule        TEXT NOT NULL,
    created_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    workflow_id          TEXT PRIMARY KEY,
    destination          TEXT NOT NULL,
    statuses             TEXT NOT NULL,
    rule                 TEXT NOT NULL,
    source_event_id      TEXT NOT NULL,
    source               TEXT NOT NULL,
    reply_correlation_id TEXT,
    attempts             INTEGER NOT NULL DEFAULT 0,
    next_poll_at         REAL NOT NULL,
    last_status          TEXT,
    created_at           REAL NOT NULL,
    publish_failures     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_poll_at);
CREATE INDEX IF NOT EXISTS starts_created ON starts (created_at);
"""

_OUTBOX_INSERT = (
    "INSERT OR IGNORE INTO outbox (workflow_id, destination, statuses, rule, source_event_id,"
    " source, reply_correlation_id, attempts, next_poll_at, last_status, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, NULL, ?)"
)
# Each step upgrades a file from the version before it (index 0: version 1 -> 2).
_MIGRATIONS = ("ALTER TABLE outbox ADD COLUMN publish_failures INTEGER NOT NULL DEFAULT 0",)


class SqliteStore:
    """`Store` on SQLite. `async with SqliteStore(path) as store:` opens and closes it."""

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Literal["NORMAL", "FULL"] = "FULL",
        first_poll_delay: float = 0.5,
        max_batch: int = 1000,
    ) -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self.first_poll_delay = first_poll_delay
        self.max_batch = max_batch
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._queue: asyncio.Queue[tuple[Op, asyncio.Future[Any]] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SqliteStore:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = await self._connect()
        try:
            await self._writer.execute("PRAGMA journal_mode=WAL")
            await self._migrate(self._writer)
            self._reader = await self._connect()
        except BaseException:
            await self.close()  # no connection (and its thread) left behind by a failed open
            raise
        self._task = asyncio.create_task(self._write_loop(), name="sqlite-store-writer")

    async def _connect(self) -> aiosqlite.Connection:
        try:
            db = await aiosqlite.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise OSError(f"store.sqlite_path '{self.path}': cannot open: {exc}") from exc
        await db.execute(f"PRAGMA synchronous={self.synchronous}")
        await db.execute("PRAGMA busy_timeout=5000")
        return db

    async def _migrate(self, db: aiosqlite.Connection) -> None:
        await db.executescript(_SCHEMA)
        async with db.execute("SELECT version FROM schema_version") as cur:
            row = await cur.fetchone()
        if row is None:
            await db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            return
        version = int(row[0])
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"store.sqlite_path '{self.path}' has schema version {version}, newer than this "
                f"gateway's {SCHEMA_VERSION}; upgrade the gateway or point it at another file"
            )
        if version < SCHEMA_VERSION:
            await db.execute("BEGIN IMMEDIATE")
            try:
                for step in _MIGRATIONS[version - 1 :]:
                    await db.execute(step)
                await db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise

    async def close(self) -> None:
        if self._task is not None:
            self._queue.put_nowait(None)  # the writer finishes what is queued, then stops
            await self._task
            self._task = None
        for db in (self._reader, self._writer):
            if db is not None:
                await db.close()
        self._reader = self._writer = None

    # -- group commit ----------------------------------------------------------------------

    async def _write(self, op: Op) -> Any:
        if self._task is None or self._task.done():
            raise RuntimeError("the store is not open; use `async with SqliteStore(path)`")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((op, future))
        return await future

    async def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            item = await self._queue.get()
            batch: list[tuple[Op, asyncio.Future[Any]]] = []
            while item is not None:
                batch.append(item)
                if len(batch) >= self.max_batch or self._queue.empty():
                    break
                item = self._queue.get_nowait()
            stopping = item is None
            if batch:
                await self._commit_batch(batch)

    async def _commit_batch(self, batch: list[tuple[Op, asyncio.Future[Any]]]) -> None:
        try:
            results = await self._transaction([op for op, _ in batch])
        except Exception as exc:  # sqlite3.Error mostly; never let the writer task die
            if len(batch) == 1:
                _settle(batch, None, exc)
                return
            # One bad write must not fail its neighbours: retry each alone to isolate it.
            for one in batch:
                await self._commit_batch([one])
            return
        _settle(batch, results, None)

    async def _transaction(self, ops: list[Op]) -> list[Any]:
        db = self._db(self._writer)
        await db.execute("BEGIN IMMEDIATE")
        try:
            results = [await op(db) for op in ops]
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        return results

    def _db(self, db: aiosqlite.Connection | None) -> aiosqlite.Connection:
        if db is None:
            raise RuntimeError("the store is not open; use `async with SqliteStore(path)`")
        return db

    # -- Store protocol --------------------------------------------------------------------

    async def find_start(self, key: str) -> str | None:
        db = self._db(self._reader)
        async with db.execute("SELECT workflow_id FROM starts WHERE key = ?", (key,)) as cur:
            row = await cur.fetchone()
        return None if row is None else str(row[0])

    async def record_start(
        self, key: str, workflow_id: str, rule: str, track: TrackRequest | None = None
    ) -> str:
        now = time.time()

        async def op(db: aiosqlite.Connection) -> str:
            cur = await db.execute(
                "INSERT OR IGNORE INTO starts (key, workflow_id, rule, created_at)"
                " VALUES (?, ?, ?, ?)",
                (key, workflow_id, rule, now),
            )
            if cur.rowcount == 0:  # the key was there already: keep its workflow
                async with db.execute(
                    "SELECT workflow_id FROM starts WHERE key = ?", (key,)
                ) as sel:
                    row = await sel.fetchone()
                return str(row[0]) if row else workflow_id
            if track is not None:
                await db.execute(_OUTBOX_INSERT, self._outbox_row(workflow_id, track, now))
            return workflow_id

        result: str = await self._write(op)
        return result

    async def track(self, workflow_id: str, track: TrackRequest) -> None:
        row = self._outbox_row(workflow_id, track, time.time())

        async def op(db: aiosqlite.Connection) -> None:
            await db.execute(_OUTBOX_INSERT, row)

        await self._write(op)

    def _outbox_row(self, workflow_id: str, track: TrackRequest, now: float) -> tuple[Any, ...]:
        return outbox_row(workflow_id, track, now, self.first_poll_delay)

    async def due(self, now: float, limit: int) -> Sequence[PendingCompletion]:
        db = self._db(self._reader)
        async with db.execute(
            f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE next_poll_at <= ?"
            " ORDER BY next_poll_at LIMIT ?",
            (now, limit),
        ) as cur:
            rows = await cur.fetchall()
        return [pending(row) for row in rows]

    async def next_due_at(self) -> float | None:
        """When the earliest outbox row is due (None when the outbox is empty)."""
        db = self._db(self._reader)
        async with db.execute("SELECT MIN(next_poll_at) FROM outbox") as cur:
            row = await cur.fetchone()
        return None if row is None or row[0] is None else float(row[0])

    async def reschedule(
        self,
        workflow_id: str,
        next_poll_at: float,
        last_status: str | None,
        publish_failures: int = 0,
    ) -> None:
        async def op(db: aiosqlite.Connection) -> None:
            await db.execute(
                "UPDATE outbox SET next_poll_at = ?, last_status = ?, attempts = attempts + 1,"
                " publish_failures = ? WHERE workflow_id = ?",
                (next_poll_at, last_status, publish_failures, workflow_id),
            )

        await self._write(op)

    async def mark_published(self, workflow_id: str) -> None:
        async def op(db: aiosqlite.Connection) -> None:
            await db.execute("DELETE FROM outbox WHERE workflow_id = ?", (workflow_id,))

        await self._write(op)

    async def pending_count(self) -> int:
        db = self._db(self._reader)
        async with db.execute("SELECT COUNT(*) FROM outbox") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def purge_starts(self, older_than: float) -> int:
        """Forget dedupe records created before `older_than` (epoch s); return how many.

        Keep them longer than any redelivery can arrive (Kafka retention, AMQP requeue).
        """

        async def op(db: aiosqlite.Connection) -> int:
            cur = await db.execute("DELETE FROM starts WHERE created_at < ?", (older_than,))
            return int(cur.rowcount)

        count: int = await self._write(op)
        return count


def _settle(
    batch: list[tuple[Op, asyncio.Future[Any]]],
    results: list[Any] | None,
    error: BaseException | None,
) -> None:
    for index, (_, future) in enumerate(batch):
        if future.done():  # the caller was cancelled; the write happened anyway
            continue
        if error is not None:
            future.set_exception(error)
        elif results is not None:
            future.set_result(results[index])

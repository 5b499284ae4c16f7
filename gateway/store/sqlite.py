"""The default store: one SQLite file in WAL mode, written with group commit.

Durability: `synchronous=FULL` by default. In WAL mode NORMAL already survives a crash of the
gateway process (kill -9), but a power loss or kernel crash may roll back the last commits; the
gateway acks or commits the source delivery right after `record_start` returns, so a rolled-back
outbox row would be a lost completion event. FULL fsyncs the WAL on every commit, and its cost
is paid once per batch: every write goes through one writer task that runs all writes queued at
that moment in ONE transaction (group commit), and each caller's await returns only after that
transaction committed. A start record that finds few writes queued waits up to LINGER_SECONDS
for more first (see `_linger`). Concurrent dispatch therefore gets thousands of durable writes
per second (see bench/store.py) while a lone write still sees its own commit.

Reads use a second connection: WAL lets them run beside the writer and see committed data only.

Per-event costs are paid per batch instead (issue 18): dedupe look-ups asked while another
look-up runs wait for it and go out together as one `SELECT ... IN (...)` (gateway.coalesce),
and the starts of one group commit are recorded with one SELECT of the keys already present and
one `executemany` per table, not one statement (and thread hop) per start. A commit's latency is
bounded by the transaction before it plus, for a start record, LINGER_SECONDS.

Retention: with `retention_seconds` set, dedupe records older than that are deleted in the
background every `purge_interval` seconds, a few thousand rows per transaction so writes are
never held up for long; the table, and the cost of a look-up, stay bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson

from gateway.coalesce import Coalescer
from gateway.store.base import Claim, PendingCompletion, StartRecord, TrackRequest
from gateway.store.retention import purge_forever
from gateway.store.rows import OUTBOX_COLUMNS, outbox_row, pending
from gateway.store.thread import SqliteThread

log = logging.getLogger(__name__)

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]  # one write, run inside the group's transaction
CHUNK = 500  # keys per `IN (...)`: well under SQLite's limit of bound parameters
PURGE_CHUNK = 5000  # dedupe records deleted per transaction by the background purge
LINGER_SECONDS = 0.005  # the longest a start record waits for company in its commit
LINGER_ENOUGH = 64  # queued writes that make a group worth committing at once
LOOKUP_BUSY_MS = 50  # longest a look-up on the loop's thread waits for a busy file

# 2: outbox.publish_failures, 3: outbox.also_publish, 4: index starts_workflow, 5: claims,
# 6: marks
SCHEMA_VERSION = 6

_CLAIMS = """
CREATE TABLE IF NOT EXISTS claims (
    key        TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at REAL NOT NULL,
    created_at REAL NOT NULL
)"""

_MARKS = """
CREATE TABLE IF NOT EXISTS marks (
    topic   TEXT NOT NULL,
    part    INTEGER NOT NULL,
    reached INTEGER NOT NULL,
    PRIMARY KEY (topic, part)
)"""
# The row a migration leaves when the file held records before it kept marks: a partition
# without a mark is then unknown, not new (base.Store.reached).
_MARKS_UNKNOWN = ("", -1)

_SCHEMA = f"""
{_CLAIMS};
{_MARKS};
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
    publish_failures     INTEGER NOT NULL DEFAULT 0,
    also_publish         TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_poll_at);
CREATE INDEX IF NOT EXISTS starts_created ON starts (created_at);
CREATE INDEX IF NOT EXISTS starts_workflow ON starts (workflow_id);
"""

_OUTBOX_INSERT = (
    "INSERT OR IGNORE INTO outbox (workflow_id, destination, statuses, rule, source_event_id,"
    " source, reply_correlation_id, attempts, next_poll_at, last_status, created_at,"
    " also_publish) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, NULL, ?, ?)"
)
# Each step upgrades a file from the version before it (index 0: version 1 -> 2).
_MIGRATIONS = (
    "ALTER TABLE outbox ADD COLUMN publish_failures INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE outbox ADD COLUMN also_publish TEXT",
    "CREATE INDEX IF NOT EXISTS starts_workflow ON starts (workflow_id)",
    _CLAIMS,
    f"""INSERT OR IGNORE INTO marks (topic, part, reached)
        SELECT '{_MARKS_UNKNOWN[0]}', {_MARKS_UNKNOWN[1]}, 0 WHERE EXISTS (SELECT 1 FROM starts)""",
)


Write = Op | StartRecord


class SqliteStore:
    """`Store` on SQLite. `async with SqliteStore(path) as store:` opens and closes it."""

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Literal["NORMAL", "FULL"] = "FULL",
        first_poll_delay: float = 0.5,
        max_batch: int = 1000,
        linger: float = LINGER_SECONDS,
        retention_seconds: float = 0.0,
        purge_interval: float = 3600.0,
    ) -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self.first_poll_delay = first_poll_delay
        self.max_batch = max_batch
        self.linger = linger  # seconds a start record may wait for others to share its commit
        self.retention_seconds = retention_seconds  # 0: keep dedupe records forever
        self.purge_interval = purge_interval
        self._writer: SqliteThread | None = None
        self._reader: SqliteThread | None = None
        self._lookup: sqlite3.Connection | None = None  # dedupe look-ups, on the loop's thread
        self._queue: asyncio.Queue[tuple[Write, asyncio.Future[Any]] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._purger: asyncio.Task[None] | None = None
        self._lookups: Coalescer[str, str] = Coalescer(self.find_starts, max_batch=CHUNK)
        self.problem: str | None = None  # a local file is never out of reach (see PostgresStore)

    async def __aenter__(self) -> SqliteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._writer = await self._connect("sqlite-store-writer")
            await self._writer.run(self._migrate)
            self._reader = await self._connect("sqlite-store-reader")
            self._lookup = self._reader.sibling(busy_timeout_ms=LOOKUP_BUSY_MS)
        except BaseException:
            await self.close()  # no connection (and its thread) left behind by a failed open
            raise
        self._task = asyncio.create_task(self._write_loop(), name="sqlite-store-writer")
        if self.retention_seconds > 0:
            self._purger = asyncio.create_task(
                purge_forever(self.purge_starts, self.retention_seconds, self.purge_interval),
                name="sqlite-store-purge",
            )

    async def _connect(self, name: str) -> SqliteThread:
        db = SqliteThread(self.path, synchronous=self.synchronous, name=name)
        try:
            await db.open()
        except BaseException:
            await db.close()
            raise
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(_SCHEMA)
        row = db.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            return
        version = int(row[0])
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"store.sqlite_path '{self.path}' has schema version {version}, newer than this "
                f"gateway's {SCHEMA_VERSION}; upgrade the gateway or point it at another file"
            )
        if version < SCHEMA_VERSION:
            db.execute("BEGIN IMMEDIATE")
            try:
                for step in _MIGRATIONS[version - 1 :]:
                    db.execute(step)
                db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    async def close(self) -> None:
        if self._purger is not None:
            self._purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purger
            self._purger = None
        if self._task is not None:
            self._queue.put_nowait(None)  # the writer finishes what is queued, then stops
            await self._task
            self._task = None
        if self._lookup is not None:
            self._lookup.close()
            self._lookup = None
        for db in (self._reader, self._writer):
            if db is not None:
                await db.close()
        self._reader = self._writer = None

    # -- group commit ----------------------------------------------------------------------

    async def _write(self, op: Write) -> Any:
        if self._task is None or self._task.done():
            raise RuntimeError("the store is not open; use `async with SqliteStore(path)`")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((op, future))
        return await future

    async def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            item = await self._queue.get()
            if self.linger and isinstance(item, tuple) and isinstance(item[0], StartRecord):
                await self._linger()
            batch: list[tuple[Write, asyncio.Future[Any]]] = []
            while item is not None:
                batch.append(item)
                if len(batch) >= self.max_batch or self._queue.empty():
                    break
                item = self._queue.get_nowait()
            stopping = item is None
            if batch:
                await self._commit_batch(batch)

    async def _linger(self) -> None:
        """Let a start record wait up to `linger` for others to share its commit, unless a full
        group is queued already. A commit costs its page writes and its fsync whatever it holds:
        at 3,200 AMQP messages/s, 5 ms took the store's CPU per record from 47 to 18 µs
        (bench/pipeline.py). Only records wait: their one waiter is the delivery's settlement,
        while a claim or a partition mark holds a Conductor call back and goes at once."""
        if self._queue.qsize() < LINGER_ENOUGH:
            await asyncio.sleep(self.linger)

    async def _commit_batch(self, batch: list[tuple[Write, asyncio.Future[Any]]]) -> None:
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

    async def _transaction(self, ops: list[Write]) -> list[Any]:
        """Run `ops` in one transaction, in one hop to the writer's thread."""
        return await self._conn(self._writer).run(lambda db: self._run_ops(db, ops))

    def _run_ops(self, db: sqlite3.Connection, ops: list[Write]) -> list[Any]:
        db.execute("BEGIN IMMEDIATE")
        try:
            # The starts first, together; the other writes (outbox updates, purges) touch no
            # row a start of the same batch writes, so their order does not matter.
            kept = iter(self._record_starts(db, [op for op in ops if isinstance(op, StartRecord)]))
            results = [next(kept) if isinstance(op, StartRecord) else op(db) for op in ops]
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return results

    def _record_starts(self, db: sqlite3.Connection, starts: list[StartRecord]) -> list[str]:
        """Record the starts of one transaction; return the workflow id each key keeps (the
        one recorded before, or the first of this batch: a key twice in a batch keeps one)."""
        if not starts:
            return []
        kept = _existing(db, list({s.key: None for s in starts}))
        new_starts: list[tuple[Any, ...]] = []
        new_outbox: list[tuple[Any, ...]] = []
        for start in starts:
            if start.key in kept:
                continue
            kept[start.key] = start.workflow_id
            new_starts.append((start.key, start.workflow_id, start.rule, start.created_at))
            if start.track is not None:
                row = self._outbox_row(start.workflow_id, start.track, start.created_at)
                new_outbox.append(row)
        db.executemany(
            "INSERT OR IGNORE INTO starts (key, workflow_id, rule, created_at) VALUES (?, ?, ?, ?)",
            new_starts,
        )
        db.executemany("DELETE FROM claims WHERE key = ?", [(row[0],) for row in new_starts])
        if new_outbox:
            db.executemany(_OUTBOX_INSERT, new_outbox)
        return [kept[s.key] for s in starts]

    @staticmethod
    def _conn(db: SqliteThread | None) -> SqliteThread:
        if db is None:
            raise RuntimeError("the store is not open; use `async with SqliteStore(path)`")
        return db

    # -- Store protocol --------------------------------------------------------------------

    async def find_start(self, key: str) -> str | None:
        """Look-ups asked together are answered by one query (see the module's docstring)."""
        if self._task is None:
            raise RuntimeError("the store is not open; use `async with SqliteStore(path)`")
        return await self._lookups.get(key)

    async def find_starts(self, keys: Sequence[str]) -> dict[str, str]:
        """The recorded workflow id of each key that has one.

        Read on the event loop's own thread: a primary-key look-up of a batch takes well under
        a millisecond, less than a hop to the reader thread costs while the loop is busy (the
        hop waits for the interpreter lock). A WAL reader does not wait for the writer; if the
        file is busy anyway (recovery), the look-up gives up after LOOKUP_BUSY_MS and goes
        through the reader thread instead.
        """
        if self._lookup is not None:
            try:
                return _existing(self._lookup, keys)
            except sqlite3.OperationalError:
                pass
        return await self._conn(self._reader).run(lambda db: _existing(db, keys))

    async def started_workflows(self, workflow_ids: Sequence[str]) -> set[str]:
        """Which of these workflow ids have a dedupe record: one query whatever their number
        (the ids go in as one JSON array, so SQLite's limit of bound parameters never bites)."""
        if not workflow_ids:
            return set()
        rows = await self._read(
            "SELECT DISTINCT workflow_id FROM starts"
            " WHERE workflow_id IN (SELECT value FROM json_each(?))",
            (orjson.dumps(list(workflow_ids)).decode(),),
        )
        return {str(row[0]) for row in rows}

    async def record_start(
        self, key: str, workflow_id: str, rule: str, track: TrackRequest | None = None
    ) -> str:
        result: str = await self._write(StartRecord(key, workflow_id, rule, track, time.time()))
        return result

    async def claim_start(self, key: str, owner: str, lease_seconds: float) -> Claim:
        """A key recorded already is answered by the look-up, without a write. Never `held`:
        the file has one process (see `_claim`)."""
        recorded = await self.find_start(key)
        if recorded is not None:
            return Claim("recorded", recorded)

        def op(db: sqlite3.Connection) -> Claim:
            return _claim(db, key, owner, time.time(), lease_seconds)

        claim: Claim = await self._write(op)
        return claim

    async def release_claim(self, key: str, owner: str) -> None:
        def op(db: sqlite3.Connection) -> None:
            db.execute("UPDATE claims SET expires_at = 0 WHERE key = ? AND owner = ?", (key, owner))

        await self._write(op)

    async def reached(self, topic: str, partitions: Sequence[int]) -> dict[int, int | None]:
        rows = await self._read(
            "SELECT topic, part, reached FROM marks WHERE (topic = ? AND part IN"
            " (SELECT value FROM json_each(?))) OR (topic = ? AND part = ?)",
            (topic, orjson.dumps(list(partitions)).decode(), *_MARKS_UNKNOWN),
        )
        marks = {int(part): int(mark) for name, part, mark in rows if name == topic}
        unknown = any((name, part) == _MARKS_UNKNOWN for name, part, _ in rows)
        return {p: marks.get(p, None if unknown else 0) for p in partitions}

    async def reach(self, topic: str, partition: int, offset: int) -> None:
        def op(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO marks (topic, part, reached) VALUES (?, ?, ?) ON CONFLICT"
                " (topic, part) DO UPDATE SET reached = max(reached, excluded.reached)",
                (topic, partition, offset),
            )

        await self._write(op)

    async def track(self, workflow_id: str, track: TrackRequest) -> None:
        row = self._outbox_row(workflow_id, track, time.time())

        def op(db: sqlite3.Connection) -> None:
            db.execute(_OUTBOX_INSERT, row)

        await self._write(op)

    def _outbox_row(self, workflow_id: str, track: TrackRequest, now: float) -> tuple[Any, ...]:
        return outbox_row(workflow_id, track, now, self.first_poll_delay)

    async def due(self, now: float, limit: int) -> Sequence[PendingCompletion]:
        rows = await self._read(
            f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE next_poll_at <= ?"
            " ORDER BY next_poll_at LIMIT ?",
            (now, limit),
        )
        return [pending(row) for row in rows]

    async def next_due_at(self) -> float | None:
        """When the earliest outbox row is due (None when the outbox is empty)."""
        rows = await self._read("SELECT MIN(next_poll_at) FROM outbox")
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    async def reschedule(
        self,
        workflow_id: str,
        next_poll_at: float,
        last_status: str | None,
        publish_failures: int = 0,
    ) -> None:
        def op(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE outbox SET next_poll_at = ?, last_status = ?, attempts = attempts + 1,"
                " publish_failures = ? WHERE workflow_id = ?",
                (next_poll_at, last_status, publish_failures, workflow_id),
            )

        await self._write(op)

    async def mark_published(self, workflow_id: str) -> None:
        def op(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM outbox WHERE workflow_id = ?", (workflow_id,))

        await self._write(op)

    async def pending_count(self) -> int:
        rows = await self._read("SELECT COUNT(*) FROM outbox")
        return int(rows[0][0]) if rows else 0

    async def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return await self._conn(self._reader).run(lambda db: db.execute(sql, params).fetchall())

    async def purge_starts(self, older_than: float) -> int:
        """Forget dedupe records created before `older_than` (epoch s); return how many.

        Keep them longer than any redelivery can arrive (Kafka retention, AMQP requeue).
        """

        total = 0
        while True:  # in chunks: one long DELETE would hold every start's commit back

            def op(db: sqlite3.Connection) -> int:
                cur = db.execute(
                    "DELETE FROM starts WHERE rowid IN (SELECT rowid FROM starts"
                    " WHERE created_at < ? LIMIT ?)",
                    (older_than, PURGE_CHUNK),
                )
                return int(cur.rowcount)

            count: int = await self._write(op)
            total += count
            if count < PURGE_CHUNK:
                break

        def forget_claims(db: sqlite3.Connection) -> None:  # a failed start's, left in doubt
            db.execute(
                "DELETE FROM claims WHERE created_at < ? AND expires_at < ?", (older_than,) * 2
            )

        await self._write(forget_claims)
        return total


def _existing(db: sqlite3.Connection, keys: Sequence[str]) -> dict[str, str]:
    """key -> workflow id of the keys recorded already, in queries of CHUNK keys."""
    found: dict[str, str] = {}
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = db.execute(f"SELECT key, workflow_id FROM starts WHERE key IN ({marks})", chunk)
        found.update((str(k), str(w)) for k, w in rows)
    return found


def _claim(db: sqlite3.Connection, key: str, owner: str, now: float, lease: float) -> Claim:
    """Claim `key` inside the writer's transaction (see `Store.claim_start`)."""
    row = db.execute("SELECT workflow_id FROM starts WHERE key = ?", (key,)).fetchone()
    if row is not None:
        return Claim("recorded", str(row[0]))
    if db.execute("SELECT 1 FROM claims WHERE key = ?", (key,)).fetchone() is None:
        db.execute(
            "INSERT INTO claims (key, owner, expires_at, created_at) VALUES (?, ?, ?, ?)",
            (key, owner, now + lease, now),
        )
        return Claim("claimed")
    # One process uses a SQLite file, and it runs the starts of one key one at a time: a claim
    # of another owner was left by an earlier process, gone, so the key is in doubt at once
    # instead of after the lease.
    db.execute(
        "UPDATE claims SET owner = ?, expires_at = ? WHERE key = ?", (owner, now + lease, key)
    )
    return Claim("in_doubt")


def _settle(
    batch: list[tuple[Write, asyncio.Future[Any]]],
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

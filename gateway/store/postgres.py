"""The shared store: PostgreSQL, for several gateway replicas (asyncpg).

Same tables as the SQLite store, prefixed `gateway_`. What changes with several replicas:
- `record_start` relies on the primary key: `INSERT ... ON CONFLICT DO NOTHING RETURNING`, and
  the loser of a race reads the winner's workflow id; the outbox rows go in the same statement.
- `due` CLAIMS the rows it returns: it selects due rows `FOR UPDATE SKIP LOCKED` and pushes
  their next poll `claim_seconds` ahead in the same statement, so two replicas never poll the
  same workflow at once; if a replica dies, its claimed rows come due again after the claim.
- Starts of one key are claimed first (`claim_start`): a row in `gateway_claims` with its owner
  and a lease, inserted before Conductor is called and deleted by the key's `record_start`.
  Insert-first rather than an advisory lock held for the call: a lock needs one pooled
  connection per start in flight for the whole Conductor call (the pool, not Conductor, would
  bound throughput), it vanishes with its session when the network to PostgreSQL breaks while
  the call goes on (two replicas would both start), and it leaves no trace after a crash,
  while a claim row left without a record tells the next owner the key is in doubt, so it asks
  Conductor by correlation id before starting again.
- Migrations run under a transaction-scoped advisory lock, so replicas starting together do
  not race on CREATE.
Commits are durable (`synchronous_commit` is left at the server's default, on).

Dedupe look-ups asked together go out as one `WHERE key = ANY($1)` (gateway.coalesce): one
round trip for a fetched batch instead of one per event. Starts recorded together are one
statement (_RECORD), so one round trip, up to half the pool's connections at a time; claims
asked together share one transaction. A released connection is not reset (_keep_session): the
default reset would add a round trip to every statement. With `retention_seconds` set, records
older than that are deleted in the background, in chunks, every `purge_interval` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

from gateway.coalesce import Coalescer
from gateway.store.base import (
    Claim,
    PendingCompletion,
    StartRecord,
    StoreUnreachable,
    TrackRequest,
    replica_of,
)
from gateway.store.retention import purge_forever
from gateway.store.rows import OUTBOX_COLUMNS, outbox_row, pending

# 2: gateway_outbox.publish_failures, 3: gateway_outbox.also_publish,
# 4: index gateway_starts_workflow, 5: gateway_claims, 6: gateway_marks
SCHEMA_VERSION = 6
PURGE_CHUNK = 5000  # dedupe records deleted per statement by the background purge
RECORD_PASSES = 3  # a batch's record statements at most (a race costs a second, see _RECORD)
_MIGRATION_LOCK = 0x6761_7465  # advisory lock key: "gate"
# A server the network swallows must not hold a start for ever: bounded connects and queries.
CONNECT_SECONDS = 5.0
COMMAND_SECONDS = 10.0
WATCH_SECONDS = 2.0  # between the health checks behind /readyz

_CLAIMS = """
CREATE TABLE IF NOT EXISTS gateway_claims (
    key        TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
)"""

_MARKS = """
CREATE TABLE IF NOT EXISTS gateway_marks (
    topic   TEXT NOT NULL,
    part    INTEGER NOT NULL,
    reached BIGINT NOT NULL,
    PRIMARY KEY (topic, part)
)"""
# The row a migration leaves when the database held records before it kept marks: a partition
# without a mark is then unknown, not new (base.Store.reached). No Kafka topic is named ''.
_MARKS_UNKNOWN = ("", -1)

_SCHEMA = f"""
{_CLAIMS};
{_MARKS};
CREATE TABLE IF NOT EXISTS gateway_schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS gateway_starts (
    key         TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    rule        TEXT NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS gateway_outbox (
    workflow_id          TEXT PRIMARY KEY,
    destination          TEXT NOT NULL,
    statuses             TEXT NOT NULL,
    rule                 TEXT NOT NULL,
    source_event_id      TEXT NOT NULL,
    source               TEXT NOT NULL,
    reply_correlation_id TEXT,
    attempts             INTEGER NOT NULL DEFAULT 0,
    next_poll_at         DOUBLE PRECISION NOT NULL,
    last_status          TEXT,
    created_at           DOUBLE PRECISION NOT NULL,
    publish_failures     INTEGER NOT NULL DEFAULT 0,
    also_publish         TEXT
);
CREATE INDEX IF NOT EXISTS gateway_outbox_due ON gateway_outbox (next_poll_at);
CREATE INDEX IF NOT EXISTS gateway_starts_created ON gateway_starts (created_at);
CREATE INDEX IF NOT EXISTS gateway_starts_workflow ON gateway_starts (workflow_id);
"""

_OUTBOX_INSERT = (
    "INSERT INTO gateway_outbox (workflow_id, destination, statuses, rule, source_event_id,"
    " source, reply_correlation_id, attempts, next_poll_at, last_status, created_at,"
    " also_publish) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, NULL, $9, $10)"
    " ON CONFLICT DO NOTHING"
)
# Each step upgrades a database from the version before it (index 0: version 1 -> 2).
_MIGRATIONS = (
    "ALTER TABLE gateway_outbox ADD COLUMN IF NOT EXISTS publish_failures"
    " INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE gateway_outbox ADD COLUMN IF NOT EXISTS also_publish TEXT",
    "CREATE INDEX IF NOT EXISTS gateway_starts_workflow ON gateway_starts (workflow_id)",
    _CLAIMS,
    f"""{_MARKS};
    INSERT INTO gateway_marks (topic, part, reached)
    SELECT '{_MARKS_UNKNOWN[0]}', {_MARKS_UNKNOWN[1]}, 0 WHERE EXISTS (SELECT 1 FROM gateway_starts)
    ON CONFLICT DO NOTHING""",
)
# Insert-first: a new key's claim is inserted; an existing claim is taken over only when its
# lease ran out or its owner is an earlier incarnation of this replica (a conflicting row is
# locked either way, so a claimer and a recorder of one key go one after the other). `xmax`
# is 0 on a freshly inserted row: a taken-over claim is the in-doubt case.
_CLAIM_STARTS = """
INSERT INTO gateway_claims AS c (key, owner, expires_at, created_at)
SELECT k, $2, $3, $4 FROM unnest($1::text[]) AS k ORDER BY k
ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
WHERE c.expires_at <= $4 OR split_part(c.owner, '#', 1) = $5
RETURNING c.key, c.xmax::text <> '0' AS in_doubt
"""
# record_start's batch in one statement, its own transaction (autocommit): insert the new keys
# (in key order; a key recorded before, or by a concurrent replica, is left as it is), add the
# outbox rows of the keys it inserted, delete the keys' claims (locked in key order, as the
# claimers lock them), and return the id every key keeps: its new row, else the row the
# statement's snapshot shows. A row committed by another replica after that snapshot began is
# not shown (READ COMMITTED): the caller runs the statement again for those keys.
_RECORD = """
WITH inserted AS (
    INSERT INTO gateway_starts (key, workflow_id, rule, created_at)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[])
        AS g (key, workflow_id, rule, created_at) ORDER BY key
    ON CONFLICT DO NOTHING
    RETURNING key, workflow_id
), tracked AS (
    INSERT INTO gateway_outbox (workflow_id, destination, statuses, rule, source_event_id,
        source, reply_correlation_id, attempts, next_poll_at, last_status, created_at,
        also_publish)
    SELECT t.workflow_id, t.destination, t.statuses, t.rule, t.source_event_id, t.source,
        t.reply_correlation_id, 0, t.next_poll_at, NULL, t.created_at, t.also_publish
    FROM unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
        $11::text[], $12::text[], $13::float8[], $14::float8[], $15::text[])
        AS t (key, workflow_id, destination, statuses, rule, source_event_id, source,
            reply_correlation_id, next_poll_at, created_at, also_publish)
    JOIN inserted USING (key)
    ON CONFLICT DO NOTHING
), unclaimed AS (
    DELETE FROM gateway_claims WHERE key IN (
        SELECT key FROM gateway_claims WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE)
)
SELECT key, workflow_id FROM inserted
UNION ALL
SELECT key, workflow_id FROM gateway_starts WHERE key = ANY($1::text[])
"""
_CLAIM = f"""
WITH due AS (
    SELECT workflow_id, next_poll_at AS was_due FROM gateway_outbox
    WHERE next_poll_at <= $1 ORDER BY next_poll_at LIMIT $2 FOR UPDATE SKIP LOCKED
)
UPDATE gateway_outbox o SET next_poll_at = $3 FROM due
WHERE o.workflow_id = due.workflow_id
RETURNING {", ".join("o." + c.strip() for c in OUTBOX_COLUMNS.split(","))}, due.was_due
"""


class PostgresStore:
    """`Store` on PostgreSQL. `async with PostgresStore(dsn) as store:`."""

    def __init__(
        self,
        dsn: str,
        *,
        first_poll_delay: float = 0.5,
        claim_seconds: float = 60.0,
        min_size: int = 1,
        max_size: int = 10,
        retention_seconds: float = 0.0,
        purge_interval: float = 3600.0,
    ) -> None:
        self.dsn = dsn
        self.first_poll_delay = first_poll_delay
        self.claim_seconds = claim_seconds
        self.min_size, self.max_size = min_size, max_size
        self.retention_seconds = retention_seconds  # 0: keep dedupe records forever
        self.purge_interval = purge_interval
        self._pool: Any = None
        self._purger: asyncio.Task[None] | None = None
        self._lookups: Coalescer[str, str] = Coalescer(self.find_starts)
        self._records: Coalescer[StartRecord, str] = Coalescer(
            self._record_many, concurrency=max(1, max_size // 2)
        )
        self._claims: Coalescer[tuple[str, str, float], Claim] = Coalescer(
            self._claim_many, concurrency=max(1, max_size // 2)
        )
        self._retry: tuple[type[BaseException], ...] = ()  # asyncpg's, once it is imported
        self._watcher: asyncio.Task[None] | None = None
        # Why the server is out of reach now (None: it answers): for /readyz.
        self.problem: str | None = None

    async def __aenter__(self) -> PostgresStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        # Optional dependency, imported only when a PostgreSQL store is configured.
        asyncpg: Any = importlib.import_module("asyncpg")
        errors = asyncpg.exceptions
        self._retry = (
            OSError,
            TimeoutError,
            errors.InterfaceError,  # the connection closed under a query
            errors.PostgresConnectionError,
            errors.OperatorInterventionError,  # shutting down, starting up
            errors.TransactionRollbackError,  # deadlock or serialization: run it again
        )
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self.min_size,
                max_size=self.max_size,
                timeout=CONNECT_SECONDS,
                command_timeout=COMMAND_SECONDS,
                reset=_keep_session,
            )
        except (OSError, asyncpg.PostgresError) as exc:
            raise OSError(
                f"store.postgres_dsn: cannot connect ({type(exc).__name__}: {exc}); "
                "check host, port, database and credentials"
            ) from exc
        try:
            await self._migrate()
        except self._retry as exc:  # e.g. the server went away: start-up tries again
            await self.close()
            raise OSError(
                f"store.postgres_dsn: cannot prepare the schema ({type(exc).__name__}: {exc})"
            ) from exc
        except BaseException:
            await self.close()  # a failed open leaves no pool (and its connections) behind
            raise
        if self.retention_seconds > 0:
            self._purger = asyncio.create_task(
                purge_forever(self.purge_starts, self.retention_seconds, self.purge_interval),
                name="postgres-store-purge",
            )
        self._watcher = asyncio.create_task(self._watch(), name="postgres-store-watch")

    async def _watch(self) -> None:
        """Ask the server every WATCH_SECONDS, so `problem` is current without traffic."""
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            with contextlib.suppress(StoreUnreachable), self._reachable("reach the server"):
                await self._db().fetchval("SELECT 1", timeout=WATCH_SECONDS)

    async def _migrate(self) -> None:
        async with self._pool.acquire() as db, db.transaction():
            await db.execute(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            # A current schema takes no DDL: CREATE ... IF NOT EXISTS still locks its table,
            # and a replica (re)starting beside busy ones would deadlock with their writes.
            if await db.fetchval("SELECT to_regclass('gateway_schema_version') IS NOT NULL"):
                version = await db.fetchval("SELECT max(version) FROM gateway_schema_version")
                if version == SCHEMA_VERSION:
                    return
            await db.execute(_SCHEMA)
            version = await db.fetchval("SELECT max(version) FROM gateway_schema_version")
            if version is None:
                await db.execute(
                    "INSERT INTO gateway_schema_version (version) VALUES ($1)", SCHEMA_VERSION
                )
                return
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"store.postgres_dsn: schema version {version} is newer than this "
                    f"gateway's {SCHEMA_VERSION}; upgrade the gateway"
                )
            for step in _MIGRATIONS[version - 1 :]:
                await db.execute(step)
            await db.execute("UPDATE gateway_schema_version SET version = $1", SCHEMA_VERSION)

    async def close(self) -> None:
        for task in (self._purger, self._watcher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._purger = self._watcher = None
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def _db(self) -> Any:
        if self._pool is None:
            raise RuntimeError("the store is not open; use `async with PostgresStore(dsn)`")
        return self._pool

    async def find_start(self, key: str) -> str | None:
        """Look-ups asked together are answered by one query (see the module's docstring)."""
        self._db()
        return await self._lookups.get(key)

    async def find_starts(self, keys: Sequence[str]) -> dict[str, str]:
        """The recorded workflow id of each key that has one."""
        rows = await self._fetch(
            "look up starts",
            "SELECT key, workflow_id FROM gateway_starts WHERE key = ANY($1::text[])",
            list(keys),
        )
        return {str(row["key"]): str(row["workflow_id"]) for row in rows}

    @contextlib.contextmanager
    def _reachable(self, what: str) -> Iterator[None]:
        """Turn the server's "not now" (unreachable, restarting, a deadlock) into
        StoreUnreachable: the caller waits and asks again, nothing is lost."""
        try:
            yield
        except self._retry as exc:
            self.problem = f"PostgreSQL unreachable ({type(exc).__name__}: {exc})"
            raise StoreUnreachable(
                f"store.postgres_dsn: cannot {what} ({type(exc).__name__}: {exc}); "
                "waiting for PostgreSQL"
            ) from exc
        self.problem = None

    async def _fetch(self, what: str, sql: str, *args: Any) -> list[Any]:
        """One statement's rows; StoreUnreachable when the server does not answer."""
        with self._reachable(what):
            return list(await self._db().fetch(sql, *args))

    async def _fetchval(self, what: str, sql: str, *args: Any) -> Any:
        with self._reachable(what):
            return await self._db().fetchval(sql, *args)

    async def _execute(self, what: str, sql: str, *args: Any) -> str:
        with self._reachable(what):
            return str(await self._db().execute(sql, *args))

    async def claim_start(self, key: str, owner: str, lease_seconds: float) -> Claim:
        """Claims asked together share one transaction (insert-first; see _CLAIM_STARTS)."""
        self._db()
        claim = await self._claims.get((key, owner, lease_seconds))
        assert claim is not None  # every key of a batch gets an answer
        return claim

    async def _claim_many(
        self, asked: Sequence[tuple[str, str, float]]
    ) -> dict[tuple[str, str, float], Claim]:
        """One transaction: claim every key (sorted, so two replicas lock rows in one order),
        then read which of them were recorded meanwhile; their claims are dropped again."""
        groups: dict[tuple[str, float], list[str]] = {}
        for key, owner, lease in asked:
            groups.setdefault((owner, lease), []).append(key)
        states: dict[tuple[str, str], Claim] = {}
        with self._reachable("claim starts"):
            async with self._db().acquire() as db, db.transaction():
                now = time.time()
                for (owner, lease), keys in groups.items():
                    rows = await db.fetch(
                        _CLAIM_STARTS, sorted(set(keys)), owner, now + lease, now, replica_of(owner)
                    )
                    taken = {str(r["key"]): bool(r["in_doubt"]) for r in rows}
                    for key in keys:
                        states[(key, owner)] = _claim_of(taken.get(key))
                everything = sorted({key for key, _ in states})
                recorded = await db.fetch(
                    "SELECT key, workflow_id FROM gateway_starts WHERE key = ANY($1::text[])",
                    everything,
                )
                done = {str(r["key"]): str(r["workflow_id"]) for r in recorded}
                if done:
                    await db.execute(
                        "DELETE FROM gateway_claims WHERE key = ANY($1::text[])"
                        " AND owner = ANY($2::text[])",
                        sorted(done),
                        sorted({owner for owner, _ in groups}),
                    )
        for key, owner in list(states):
            if key in done:
                states[(key, owner)] = Claim("recorded", done[key])
        return {(key, owner, lease): states[(key, owner)] for key, owner, lease in asked}

    async def release_claim(self, key: str, owner: str) -> None:
        await self._execute(
            "release a claim",
            "UPDATE gateway_claims SET expires_at = 0 WHERE key = $1 AND owner = $2",
            key,
            owner,
        )

    async def started_workflows(self, workflow_ids: Sequence[str]) -> set[str]:
        """Which of these workflow ids have a dedupe record: one query (index on workflow_id)."""
        if not workflow_ids:
            return set()
        rows = await self._fetch(
            "look up started workflows",
            "SELECT DISTINCT workflow_id FROM gateway_starts WHERE workflow_id = ANY($1::text[])",
            list(workflow_ids),
        )
        return {str(row["workflow_id"]) for row in rows}

    async def record_start(
        self, key: str, workflow_id: str, rule: str, track: TrackRequest | None = None
    ) -> str:
        """Starts recorded together share one transaction (see the module's docstring)."""
        kept = await self._records.get(StartRecord(key, workflow_id, rule, track, time.time()))
        assert kept is not None  # every record of a batch gets the id its key keeps
        return kept

    async def _record_many(self, starts: Sequence[StartRecord]) -> dict[StartRecord, str]:
        """One statement, so one round trip (see _RECORD): the first record of a key wins."""
        first: dict[str, StartRecord] = {}
        for start in starts:
            first.setdefault(start.key, start)
        keys = sorted(first)  # one lock order for every replica: no deadlock between them
        kept: dict[str, str] = {}
        with self._reachable("record starts"):
            for _ in range(RECORD_PASSES):
                kept |= await self._record_keys(keys, first)
                # A key left out was recorded by a replica whose transaction committed after
                # this statement's snapshot was taken (READ COMMITTED): the statement found
                # the conflict but cannot show the row; the next one (these keys only) can.
                if not (keys := [k for k in keys if k not in kept]):
                    return {start: kept[start.key] for start in starts}
        raise StoreUnreachable(
            f"store.postgres_dsn: keys {keys[:3]} were neither recorded nor found in "
            f"{RECORD_PASSES} passes (purged meanwhile?); recording them again"
        )

    async def _record_keys(self, keys: list[str], first: dict[str, StartRecord]) -> dict[str, str]:
        """The id each key keeps, but for a key recorded concurrently and not yet visible."""
        starts = [first[k] for k in keys]
        tracked = [
            (s.key, s.workflow_id, s.track, s.created_at) for s in starts if s.track is not None
        ]
        outbox = [(k, *self._outbox_row(wf, track, at)) for k, wf, track, at in tracked]
        columns = [list(column) for column in zip(*outbox, strict=True)] or [[]] * 11
        rows = await self._db().fetch(
            _RECORD,
            keys,
            [s.workflow_id for s in starts],
            [s.rule for s in starts],
            [s.created_at for s in starts],
            *columns,
        )
        return {str(row["key"]): str(row["workflow_id"]) for row in rows}

    async def reached(self, topic: str, partitions: Sequence[int]) -> dict[int, int | None]:
        """One query: the partitions' marks and the migration's "unknown" row."""
        rows = await self._fetch(
            "read partition marks",
            "SELECT topic, part, reached FROM gateway_marks"
            " WHERE (topic = $1 AND part = ANY($2::int[])) OR (topic = $3 AND part = $4)",
            topic,
            list(partitions),
            *_MARKS_UNKNOWN,
        )
        found = {(str(r["topic"]), int(r["part"])): int(r["reached"]) for r in rows}
        unknown = _MARKS_UNKNOWN in found
        return {p: found.get((topic, p), None if unknown else 0) for p in partitions}

    async def reach(self, topic: str, partition: int, offset: int) -> None:
        """One autocommitted upsert: replicas raising one mark at once serialize on its row,
        and GREATEST keeps the higher of the two whatever order they commit in."""
        await self._execute(
            "raise a partition mark",
            "INSERT INTO gateway_marks AS m (topic, part, reached) VALUES ($1, $2, $3)"
            " ON CONFLICT (topic, part) DO UPDATE"
            " SET reached = GREATEST(m.reached, EXCLUDED.reached)",
            topic,
            partition,
            offset,
        )

    async def track(self, workflow_id: str, track: TrackRequest) -> None:
        row = self._outbox_row(workflow_id, track, time.time())
        await self._execute("track a workflow", _OUTBOX_INSERT, *row)

    def _outbox_row(self, workflow_id: str, track: TrackRequest, now: float) -> tuple[Any, ...]:
        return outbox_row(workflow_id, track, now, self.first_poll_delay)

    async def due(self, now: float, limit: int) -> Sequence[PendingCompletion]:
        """Claim up to `limit` due rows for this replica, oldest first."""
        rows = await self._fetch("claim due rows", _CLAIM, now, limit, now + self.claim_seconds)
        rows.sort(key=lambda r: r["was_due"])
        return [pending(row, due_at=row["was_due"]) for row in rows]

    async def next_due_at(self) -> float | None:
        value = await self._fetchval(
            "read the next due time", "SELECT min(next_poll_at) FROM gateway_outbox"
        )
        return None if value is None else float(value)

    async def reschedule(
        self,
        workflow_id: str,
        next_poll_at: float,
        last_status: str | None,
        publish_failures: int = 0,
    ) -> None:
        await self._execute(
            "reschedule a poll",
            "UPDATE gateway_outbox SET next_poll_at = $1, last_status = $2,"
            " attempts = attempts + 1, publish_failures = $3 WHERE workflow_id = $4",
            next_poll_at,
            last_status,
            publish_failures,
            workflow_id,
        )

    async def mark_published(self, workflow_id: str) -> None:
        await self._execute(
            "mark a completion published",
            "DELETE FROM gateway_outbox WHERE workflow_id = $1",
            workflow_id,
        )

    async def pending_count(self) -> int:
        return int(await self._fetchval("count the outbox", "SELECT count(*) FROM gateway_outbox"))

    async def purge_starts(self, older_than: float) -> int:
        """Forget dedupe records created before `older_than` (epoch s); return how many."""
        total = 0
        while True:  # in chunks: one huge DELETE would hold its locks and WAL for long
            status = await self._db().execute(
                "DELETE FROM gateway_starts WHERE key IN (SELECT key FROM gateway_starts"
                " WHERE created_at < $1 LIMIT $2)",
                older_than,
                PURGE_CHUNK,
            )
            count = int(str(status).rsplit(" ", 1)[-1])
            total += count
            if count < PURGE_CHUNK:
                break
        await self._db().execute(  # claims of failed starts, left in doubt
            "DELETE FROM gateway_claims WHERE created_at < $1 AND expires_at < $1", older_than
        )
        return total


async def _keep_session(connection: Any) -> None:
    """A released connection's reset: none beyond asyncpg's own rollback of an open transaction.
    The default (RESET ALL, CLOSE ALL, UNLISTEN *, pg_advisory_unlock_all) costs a round trip
    per statement, and this store leaves none of that behind (its one lock is per transaction)."""


def _claim_of(in_doubt: bool | None) -> Claim:
    """The claim a key got: None when another owner holds it."""
    if in_doubt is None:
        return Claim("held")
    return Claim("in_doubt") if in_doubt else Claim("claimed")

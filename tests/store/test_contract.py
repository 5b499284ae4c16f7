"""The Store contract, run against both stores: SQLite (default) and PostgreSQL (shared)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.store.base import StoreUnreachable, TrackRequest
from gateway.store.postgres import SCHEMA_VERSION as postgres_version
from gateway.store.postgres import PostgresStore
from gateway.store.sqlite import SCHEMA_VERSION as sqlite_version
from gateway.store.sqlite import SqliteStore

TRACK = TrackRequest(
    destination="amqp:replies",
    statuses=frozenset({"COMPLETED", "TIMED_OUT"}),
    rule="rpc",
    source_event_id="amqp:requests:m-1",
    source="amqp:requests",
    reply_correlation_id="corr-9",
)

StoreFactory = Callable[[], Any]


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    if request.param == "sqlite":
        return lambda **kw: SqliteStore(tmp_path / "g.db", first_poll_delay=0.0, **kw)
    dsn = request.getfixturevalue("postgres_dsn")
    return lambda **kw: PostgresStore(dsn, first_poll_delay=0.0, **kw)


@pytest.fixture
async def store(make_store: StoreFactory) -> AsyncIterator[Any]:
    async with make_store() as s:
        yield s


async def test_record_start_keeps_the_first_workflow_and_one_outbox_row(store: Any) -> None:
    assert await store.find_start("k") is None
    assert await store.record_start("k", "wf-a", "rpc", TRACK) == "wf-a"
    assert await store.record_start("k", "wf-b", "rpc", TRACK) == "wf-a"
    assert await store.find_start("k") == "wf-a"
    assert await store.pending_count() == 1


async def test_concurrent_starts_of_one_key_agree_on_one_winner(store: Any) -> None:
    results = await asyncio.gather(
        *(store.record_start("same", f"wf-{i}", "rpc", TRACK) for i in range(30))
    )
    assert len(set(results)) == 1
    assert await store.pending_count() == 1


async def test_outbox_rows_roundtrip_and_come_due_oldest_first(store: Any) -> None:
    before = time.time()
    for i in range(4):
        await store.track(f"wf-{i}", TRACK)
    now = time.time()
    await store.reschedule("wf-0", now + 60, "RUNNING")
    await store.reschedule("wf-2", now - 100, "PAUSED", publish_failures=3)
    rows = await store.due(now + 1, 2)
    assert [r.workflow_id for r in rows] == ["wf-2", "wf-1"]
    assert rows[0].request == TRACK
    assert (rows[0].attempts, rows[0].last_status) == (1, "PAUSED")
    assert (rows[0].publish_failures, rows[1].publish_failures) == (3, 0)
    assert all(before <= r.created_at <= now for r in rows)
    await store.mark_published("wf-2")
    assert await store.pending_count() == 3


async def test_record_start_without_tracking_adds_no_row(store: Any) -> None:
    await store.record_start("k", "wf", "rpc")
    assert await store.pending_count() == 0


async def test_state_survives_close_and_reopen(make_store: StoreFactory) -> None:
    async with make_store() as store:
        await asyncio.gather(
            *(store.record_start(f"k{i}", f"wf-{i}", "rpc", TRACK) for i in range(100))
        )
        await store.mark_published("wf-5")
    async with make_store() as store:
        assert await store.find_start("k99") == "wf-99"
        assert await store.pending_count() == 99
        ids = {r.workflow_id for r in await store.due(time.time() + 1, 500)}
    assert len(ids) == 99 and "wf-5" not in ids


async def test_purge_forgets_old_dedupe_records(store: Any) -> None:
    await store.record_start("old", "wf", "rpc")
    assert await store.purge_starts(time.time() + 1) == 1
    assert await store.find_start("old") is None


async def test_a_batch_with_keys_twice_keeps_the_first_of_each(store: Any) -> None:
    # Written together, these land in one group commit (SQLite) or race (PostgreSQL).
    await store.record_start("b", "wf-b0", "rpc", TRACK)
    keys = ["a", "b", "a", "c", "b", "c", "a"]
    results = await asyncio.gather(
        *(store.record_start(k, f"wf-{k}{i + 1}", "rpc", TRACK) for i, k in enumerate(keys))
    )
    kept = dict(zip(keys, results, strict=True))
    assert [kept[k] for k in keys] == results  # every write of a key got the one kept id
    assert kept["b"] == "wf-b0"  # recorded before the batch: it stays
    assert kept["a"] in {"wf-a1", "wf-a3", "wf-a7"} and kept["c"] in {"wf-c4", "wf-c6"}
    assert await store.pending_count() == 3  # one outbox row per kept workflow


async def test_lookups_asked_together_each_get_their_own_answer(store: Any) -> None:
    for i in range(0, 1200, 2):
        await store.record_start(f"k{i}", f"wf{i}", "rpc")
    found = await asyncio.gather(*(store.find_start(f"k{i}") for i in range(1200)))
    assert found == [f"wf{i}" if i % 2 == 0 else None for i in range(1200)]


async def test_purge_deletes_in_chunks_until_none_is_left(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(f"{type(store).__module__}.PURGE_CHUNK", 7)
    await asyncio.gather(*(store.record_start(f"old{i}", "wf", "rpc") for i in range(30)))
    cut = time.time() + 0.01
    await asyncio.sleep(0.05)
    await store.record_start("new", "wf-new", "rpc")
    assert await store.purge_starts(cut) == 30
    assert await store.find_start("old0") is None and await store.find_start("old29") is None
    assert await store.find_start("new") == "wf-new"


async def test_the_background_purge_forgets_expired_records_only(
    make_store: StoreFactory,
) -> None:
    async with make_store(retention_seconds=2.0, purge_interval=0.1) as store:
        await store.record_start("old", "wf-old", "rpc")
        await asyncio.sleep(2.1)
        await store.record_start("new", "wf-new", "rpc")  # expires 2 s from now

        async def forgotten() -> bool:
            return await store.find_start("old") is None

        deadline = time.monotonic() + 10
        while not await forgotten():
            assert time.monotonic() < deadline, "the expired record was never purged"
            await asyncio.sleep(0.05)
        assert await store.find_start("new") == "wf-new"


async def test_postgres_replicas_claim_disjoint_rows(postgres_dsn: str) -> None:
    async with (
        PostgresStore(postgres_dsn, first_poll_delay=0.0) as one,
        PostgresStore(postgres_dsn, first_poll_delay=0.0, claim_seconds=0.3) as two,
    ):
        for i in range(50):
            await one.track(f"wf-{i}", TRACK)
        now = time.time()
        first, second = await asyncio.gather(one.due(now, 30), two.due(now, 30))
        a = {r.workflow_id for r in first}
        b = {r.workflow_id for r in second}
        assert not a & b and len(a | b) == 50
        # A replica that claimed rows and died: they come due again after its claim.
        assert await one.due(now, 100) == []
        await asyncio.sleep(0.4)
        again = {r.workflow_id for r in await one.due(time.time(), 100)}
        assert again == b


async def test_postgres_upgrades_a_version_1_database(postgres_dsn: str) -> None:
    import asyncpg

    async with PostgresStore(postgres_dsn, first_poll_delay=0.0) as store:
        await store.track("wf", TRACK)
    db = await asyncpg.connect(postgres_dsn)
    try:  # what a gateway with schema version 1 left behind
        await db.execute("ALTER TABLE gateway_outbox DROP COLUMN publish_failures")
        await db.execute("UPDATE gateway_schema_version SET version = 1")
    finally:
        await db.close()
    async with PostgresStore(postgres_dsn, first_poll_delay=0.0) as store:
        [row] = await store.due(time.time() + 1, 10)
        assert row.workflow_id == "wf" and row.publish_failures == 0
        await store.reschedule("wf", 0.0, None, publish_failures=2)
        [row] = await store.due(time.time() + 1, 10)
        assert row.publish_failures == 2


async def test_postgres_newer_schema_is_refused_and_leaves_no_connection(
    postgres_dsn: str,
) -> None:
    import asyncpg

    async with PostgresStore(postgres_dsn):
        pass
    db = await asyncpg.connect(postgres_dsn)
    try:
        await db.execute("UPDATE gateway_schema_version SET version = 99")
        store = PostgresStore(postgres_dsn, min_size=2)
        with pytest.raises(RuntimeError, match="schema version 99"):
            await store.open()
        others = await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await db.close()
    assert others == 0  # the failed open closed its pool


def test_settings_pick_the_store(tmp_path: Path) -> None:
    from pydantic import SecretStr

    from gateway.settings import Settings
    from gateway.store.factory import build_store

    sqlite = build_store(Settings(store={"sqlite_path": tmp_path / "x.db"}))
    assert isinstance(sqlite, SqliteStore) and sqlite.path == tmp_path / "x.db"
    dsn = SecretStr("postgresql://gw@db/gateway")
    postgres = build_store(Settings(store={"postgres_dsn": dsn}))
    assert isinstance(postgres, PostgresStore)


async def test_started_workflows_names_only_the_ids_the_gateway_recorded(store: Any) -> None:
    await store.record_start("k1", "wf-1", "rpc", TRACK)
    await store.record_start("k2", "wf-2", "rpc")
    await store.record_start("k3", "wf-1", "rpc")  # two keys may name one workflow
    await store.track("wf-reply", TRACK)  # an outbox row alone is not a start
    asked = ["wf-1", "wf-2", "wf-reply", "wf-elsewhere", "wf-1"]
    assert await store.started_workflows(asked) == {"wf-1", "wf-2"}
    assert await store.started_workflows([]) == set()
    many = [f"wf-{i}" for i in range(40_000)]  # past SQLite's limit of bound parameters
    assert await store.started_workflows(many) == {"wf-1", "wf-2"}


async def test_a_version_3_store_gains_the_workflow_id_index(make_store: StoreFactory) -> None:
    async with make_store() as store:  # what a gateway with schema version 3 left behind
        await store.record_start("k", "wf", "rpc")
        await _sql(store, "DROP INDEX {}starts_workflow")
        await _sql(store, "UPDATE {}schema_version SET version = 3")
    async with make_store() as store:
        assert await store.started_workflows(["wf"]) == {"wf"}
        if isinstance(store, SqliteStore):
            plan = await store._read(
                "EXPLAIN QUERY PLAN SELECT key FROM starts WHERE workflow_id = 'wf'"
            )
            assert any("starts_workflow" in str(row) for row in plan), plan
            [(version,)] = await store._read("SELECT version FROM schema_version")
            assert version == sqlite_version
        else:
            names = await store._db().fetch(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'gateway_starts'"
            )
            assert "gateway_starts_workflow" in {r["indexname"] for r in names}
            version = await store._db().fetchval("SELECT version FROM gateway_schema_version")
            assert version == postgres_version


async def _sql(store: Any, template: str) -> None:
    """Run one statement on either store, its table names prefixed as that store does."""
    if isinstance(store, SqliteStore):
        sql = template.format("")
        await store._write(lambda db: db.execute(sql))
    else:
        await store._db().execute(template.format("gateway_"))


async def test_partition_marks_start_at_zero_rise_and_never_fall(store: Any) -> None:
    assert await store.reached("orders", [0, 1, 2]) == {0: 0, 1: 0, 2: 0}
    await store.reach("orders", 1, 500)
    await store.reach("orders", 1, 200)  # a lower mark (a late replica) leaves it
    await store.reach("orders", 2, 2**40)  # offsets are 64-bit
    await store.reach("payments", 0, 9000)  # another topic's partition 0
    assert await store.reached("orders", [0, 1, 2]) == {0: 0, 1: 500, 2: 2**40}
    assert await store.reached("payments", [0, 1]) == {0: 9000, 1: 0}
    assert await store.reached("orders", []) == {}


async def test_a_mark_is_kept_across_a_restart(make_store: StoreFactory) -> None:
    async with make_store() as store:
        await store.reach("orders", 3, 1234)
    async with make_store() as store:
        assert await store.reached("orders", [3, 4]) == {3: 1234, 4: 0}


async def test_replicas_raising_one_mark_at_once_keep_the_highest(postgres_dsn: str) -> None:
    offsets = list(range(0, 3000, 10))
    random.Random(18).shuffle(offsets)
    stores = [PostgresStore(postgres_dsn) for _ in range(3)]
    async with stores[0] as a, stores[1] as b, stores[2] as c:
        replicas = (a, b, c)
        await asyncio.gather(
            *(replicas[i % 3].reach("orders", 0, offset) for i, offset in enumerate(offsets))
        )
        assert await b.reached("orders", [0]) == {0: 2990}


@pytest.mark.parametrize("had_starts", [True, False], ids=["with-starts", "empty"])
async def test_a_version_5_store_gains_marks(make_store: StoreFactory, had_starts: bool) -> None:
    async with make_store() as store:  # what a gateway with schema version 5 left behind
        if had_starts:
            await store.record_start("k", "wf", "rpc")
        await _sql(store, "DROP TABLE {}marks")
        await _sql(store, "UPDATE {}schema_version SET version = 5")
    async with make_store() as store:
        if not had_starts:  # nothing was ever acted on: every partition is new
            assert await store.reached("orders", [0, 1]) == {0: 0, 1: 0}
            return
        # The records kept before marks could be of any partition: unknown, so suspect.
        assert await store.reached("orders", [0, 1]) == {0: None, 1: None}
        await store.reach("orders", 1, 42)
    async with make_store() as store:  # a marked partition is known from then on
        assert await store.reached("orders", [0, 1]) == {0: None, 1: 42}
        assert await store.reached("payments", [0]) == {0: None}


async def test_postgres_a_start_committed_during_the_record_is_the_one_kept(
    postgres_dsn: str,
) -> None:
    """A replica's record of the key commits after this batch's statement began: the statement
    cannot see that row (READ COMMITTED), yet every caller gets the winner's id."""
    import asyncpg

    async with PostgresStore(postgres_dsn, first_poll_delay=0.0) as store:
        other = await asyncpg.connect(postgres_dsn)
        try:
            async with other.transaction():
                await other.execute("INSERT INTO gateway_starts VALUES ('k', 'wf-other', 'rpc', 0)")
                mine = asyncio.ensure_future(store.record_start("k", "wf-mine", "rpc", TRACK))
                new = asyncio.ensure_future(store.record_start("n", "wf-n", "rpc", TRACK))
                await _blocked(store)  # the statement waits for the other's row: it has begun
        finally:
            await other.close()
        assert (await mine, await new) == ("wf-other", "wf-n")
        assert await store.find_start("k") == "wf-other"
        assert [r.workflow_id for r in await store.due(time.time() + 1, 10)] == ["wf-n"]


async def _blocked(store: PostgresStore) -> None:
    """Until a statement of the store waits for another transaction's lock."""
    deadline = time.monotonic() + 10
    while not await store._db().fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE cardinality(pg_blocking_pids(pid)) > 0"
    ):
        assert time.monotonic() < deadline, "the record never reached the other's row"
        await asyncio.sleep(0.01)


async def test_postgres_replicas_recording_and_claiming_the_same_keys_agree(
    postgres_dsn: str,
) -> None:
    keys = [f"k{i}" for i in range(300)]
    stores = [PostgresStore(postgres_dsn, first_poll_delay=0.0) for _ in range(4)]
    async with stores[0] as a, stores[1] as b, stores[2] as c, stores[3] as d:
        replicas = (a, b, c, d)

        async def replica(n: int) -> list[str]:
            order = random.Random(n).sample(keys, len(keys))
            owner = f"replica-{n}#1"
            await asyncio.gather(*(replicas[n].claim_start(k, owner, 30) for k in order[::3]))
            kept = await asyncio.gather(
                *(replicas[n].record_start(k, f"wf-{k}-{n}", "r", TRACK) for k in order)
            )
            return [wf for _, wf in sorted(zip(order, kept, strict=True))]

        results = await asyncio.gather(*(replica(n) for n in range(4)))
        winners = await asyncio.gather(*(a.find_start(k) for k in sorted(keys)))
        assert all(result == winners for result in results)  # one id per key, for everyone
        assert await a.pending_count() == len(keys)  # one outbox row per kept workflow
        assert await a._db().fetchval("SELECT count(*) FROM gateway_claims") == 0


async def test_postgres_out_of_reach_is_said_and_passes(postgres_dsn: str) -> None:
    """Every call raises StoreUnreachable while the server is cut off (the source, dispatch and
    the tracker wait and ask again, without a traceback), and works again once it answers."""
    from tests.proxy import TcpProxy

    port = int(postgres_dsn.rsplit(":", 1)[1].split("/")[0])
    async with TcpProxy("127.0.0.1", port) as proxy:
        dsn = postgres_dsn.replace(f":{port}/", f":{proxy.port}/")
        async with PostgresStore(dsn, first_poll_delay=0.0) as store:
            await store.reach("orders", 0, 5)
            await proxy.cut()
            for attempt in (
                store.reach("orders", 0, 9),
                store.reached("orders", [0]),
                store.record_start("k", "wf", "rpc", TRACK),
                store.find_start("k"),
                store.started_workflows(["wf"]),
                store.track("wf-reply", TRACK),
                store.due(time.time(), 10),  # the tracker's calls: it says "waits for the store"
                store.next_due_at(),
                store.reschedule("wf", 0.0, None),
                store.mark_published("wf"),
                store.pending_count(),
            ):
                with pytest.raises(StoreUnreachable, match=r"store\.postgres_dsn: cannot"):
                    await attempt
            assert store.problem is not None and "unreachable" in store.problem
            await proxy.restore()
            await store.reach("orders", 0, 9)
            assert await store.reached("orders", [0]) == {0: 9}
            assert await store.record_start("k", "wf", "rpc", TRACK) == "wf"
            assert store.problem is None

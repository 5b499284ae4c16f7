"""Start claims (issue 14): on PostgreSQL one owner at a time per key; on both stores a claim
left without its record marks the key as in doubt for the next owner. SQLite has one process,
so a claim of another owner there is an earlier process's, taken over at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.store.base import Claim
from gateway.store.postgres import PostgresStore
from gateway.store.sqlite import SqliteStore

A1, A2, B1 = "replica-a#1", "replica-a#2", "replica-b#1"  # A2: replica-a restarted


@pytest.fixture(params=["sqlite", "postgres"])
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    if request.param == "sqlite":
        made: Any = SqliteStore(tmp_path / "g.db", first_poll_delay=0.0)
    else:
        made = PostgresStore(request.getfixturevalue("postgres_dsn"), first_poll_delay=0.0)
    async with made as opened:
        yield opened


@pytest.fixture
async def store(postgres_dsn: str) -> AsyncIterator[PostgresStore]:
    """The shared store: replicas' claims exclude each other."""
    async with PostgresStore(postgres_dsn, first_poll_delay=0.0) as opened:
        yield opened


async def test_one_owner_at_a_time_until_the_record(store: Any) -> None:
    assert await store.claim_start("k", A1, 30) == Claim("claimed")
    assert await store.claim_start("k", B1, 30) == Claim("held")
    assert await store.record_start("k", "wf-1", "r") == "wf-1"
    assert await store.claim_start("k", B1, 30) == Claim("recorded", "wf-1")
    assert await store.claim_start("other", B1, 30) == Claim("claimed")


async def test_an_expired_claim_is_taken_over_in_doubt(store: Any) -> None:
    assert await store.claim_start("k", A1, 0.2) == Claim("claimed")
    assert await store.claim_start("k", B1, 30) == Claim("held")
    await asyncio.sleep(0.3)
    assert await store.claim_start("k", B1, 30) == Claim("in_doubt")
    assert await store.claim_start("k", A1, 30) == Claim("held")  # B1 holds it now


async def test_a_restarted_replica_takes_its_own_claims_over_at_once(any_store: Any) -> None:
    assert await any_store.claim_start("k", A1, 30) == Claim("claimed")
    assert await any_store.claim_start("k", A2, 30) == Claim("in_doubt")
    await any_store.record_start("k", "wf-1", "r")
    assert await any_store.claim_start("k", A1, 30) == Claim("recorded", "wf-1")


async def test_a_sqlite_file_has_one_process_so_an_old_claim_is_in_doubt_at_once(
    tmp_path: Path,
) -> None:
    async with SqliteStore(tmp_path / "g.db") as store:
        assert await store.claim_start("k", A1, 30) == Claim("claimed")
    async with SqliteStore(tmp_path / "g.db") as store:  # the next process, any replica id
        assert await store.claim_start("k", B1, 30) == Claim("in_doubt")


async def test_a_released_claim_leaves_the_key_in_doubt(store: Any) -> None:
    assert await store.claim_start("k", A1, 30) == Claim("claimed")
    await store.release_claim("k", B1)  # not its owner: nothing changes
    assert await store.claim_start("k", B1, 30) == Claim("held")
    await store.release_claim("k", A1)
    assert await store.claim_start("k", B1, 30) == Claim("in_doubt")


async def test_the_record_of_a_key_ends_its_claim(any_store: Any) -> None:
    assert await any_store.claim_start("k", A1, 30) == Claim("claimed")
    await any_store.record_start("k", "wf-1", "r")
    await any_store.purge_starts(1e12)  # the record is forgotten: no claim is left in doubt
    assert await any_store.claim_start("k", B1, 30) == Claim("claimed")


async def test_a_failed_start_leaves_its_key_in_doubt(any_store: Any) -> None:
    assert await any_store.claim_start("k", A1, 30) == Claim("claimed")
    await any_store.release_claim("k", A1)
    assert await any_store.claim_start("k", A1, 30) == Claim("in_doubt")


async def test_replicas_racing_for_keys_get_one_claim_each(store: Any) -> None:
    owners = [f"replica-{i}#1" for i in range(8)]
    keys = [f"k{j}" for j in range(20)]
    asked = [(k, o) for k in keys for o in owners]
    claims = await asyncio.gather(*(store.claim_start(k, o, 30) for k, o in asked))
    for key in keys:
        got = [c.state for (k, _), c in zip(asked, claims, strict=True) if k == key]
        assert sorted(got) == ["claimed"] + ["held"] * 7, (key, got)


async def test_three_replicas_poll_disjoint_outbox_rows(postgres_dsn: str) -> None:
    from gateway.store.base import TrackRequest

    track = TrackRequest("kafka:done", frozenset({"COMPLETED"}), "r", "kafka:o:0:1", "kafka:o")
    stores = [PostgresStore(postgres_dsn, first_poll_delay=0.0) for _ in range(3)]
    async with stores[0] as a, stores[1] as b, stores[2] as c:
        await asyncio.gather(*(a.track(f"wf-{i}", track) for i in range(90)))
        now = 1e12  # every row is due
        claimed = await asyncio.gather(*(s.due(now, 40) for s in (a, b, c)))
        ids = [{row.workflow_id for row in rows} for rows in claimed]
        assert sum(len(i) for i in ids) == 90 and len(set().union(*ids)) == 90
        again = await asyncio.gather(*(s.due(now, 40) for s in (a, b, c)))
        assert again == [[], [], []]  # claimed for claim_seconds: nobody polls them twice

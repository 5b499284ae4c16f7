"""Round trips to PostgreSQL (issue 18): a replica's rate is bound by the answers it waits for,
so a batch of starts, look-ups or due rows is one round trip, and so is every single statement
(a released connection is not reset: that would be a second)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

from gateway.store.base import TrackRequest
from gateway.store.postgres import PostgresStore
from tests.store.roundtrips import RoundTrips

TRACK = TrackRequest("kafka:done", frozenset({"COMPLETED"}), "r", "kafka:o:0:1", "kafka:o")


async def test_a_batch_or_a_statement_is_one_round_trip(postgres_dsn: str) -> None:
    async with (
        RoundTrips(postgres_dsn).serving() as trips,
        # One connection, so the warm-up prepares every statement the counted calls use.
        PostgresStore(trips.dsn, first_poll_delay=0.0, min_size=1, max_size=1) as store,
    ):

        async def counted(*calls: Awaitable[object]) -> int:
            before = trips.count
            await asyncio.gather(*calls)
            return trips.count - before

        def record(keys: list[str], workflow: str) -> list[Awaitable[str]]:
            return [store.record_start(k, f"{workflow}-{k}", "r", TRACK) for k in keys]

        def singles(workflow: str) -> list[Awaitable[object]]:
            return [
                store.track(workflow, TRACK),
                store.reschedule(workflow, 0.0, "RUNNING"),
                store.mark_published(workflow),
                store.reach("orders", 0, 10),
                store.reached("orders", [0, 1]),
            ]

        warm = [f"warm{i}" for i in range(200)]
        await counted(*record(warm, "wf"), *(store.find_start(k) for k in warm))
        await store.due(time.time() + 1, 500)
        for call in singles("wf-warm"):
            await call

        keys = [f"k{i}" for i in range(200)]
        assert await counted(*record(keys, "wf")) == 1  # new keys, each with its outbox row
        assert await counted(*record(keys, "wf-again")) == 1  # recorded before
        assert await counted(*(store.find_start(k) for k in keys)) == 1
        assert await counted(store.due(time.time() + 1, 500)) == 1
        for call in singles("wf-single"):
            assert await counted(call) == 1
        assert await store.find_start("k7") == "wf-k7"

"""Start claims through the executor (issue 14): replicas sharing one PostgreSQL store (and one
process on SQLite), the real dev server as Conductor, no brokers. Each `Executor` here is one
replica's."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from gateway.conductor.client import ConductorClient
from gateway.devserver.server import DevServer
from gateway.events import Event
from gateway.executor import Context, Executor
from gateway.rules.loader import parse_rules
from gateway.rules.router import Router
from gateway.store.postgres import PostgresStore
from gateway.store.sqlite import SqliteStore
from tests.daemon.conftest import wait_workflow

RULES = """
version: 1
rules:
  - name: orders
    source: {topic: orders}
    idempotency_key: "${body.key}"
    start_workflow: {name: flow, correlation_id: "${body.key}", input: {key: "${body.key}"}}
"""
ROUTER = Router(parse_rules(RULES))


def delivery(key: str, offset: int, *, suspect: bool = False) -> tuple[Any, Context]:
    """The plan and context of a fresh Kafka record (not a redelivery) with this key."""
    body = {"key": key}
    event = Event(
        source="kafka",
        raw=json.dumps(body).encode(),
        body=body,
        topic="orders",
        partition=offset % 8,
        offset=offset,
    )
    [plan] = ROUTER.route(event).plans
    return plan, Context(event, suspect, time.time())


@contextlib.asynccontextmanager
async def conductor() -> AsyncIterator[ConductorClient]:
    async with (
        DevServer(port=0) as server,
        ConductorClient(server.url, flavor="oss", transport="httpx") as client,
    ):
        await client.register_workflow_def(wait_workflow("flow"))
        yield client


async def workflows_of_key(client: ConductorClient, key: str) -> list[str]:
    return (await client.get_by_correlation_ids("flow", [key], include_closed=True))[key]


async def test_replicas_racing_for_the_same_keys_start_one_workflow_each(
    postgres_dsn: str,
) -> None:
    keys = [f"order-{i}" for i in range(40)]
    async with (
        conductor() as client,
        PostgresStore(postgres_dsn) as a,
        PostgresStore(postgres_dsn) as b,
        PostgresStore(postgres_dsn) as c,
    ):
        replicas = [Executor(client, s, replica_id=f"r{i}") for i, s in enumerate((a, b, c))]
        runs = [
            replica.execute(*delivery(key, offset))
            for offset, (key, replica) in enumerate((k, r) for k in keys for r in replicas)
        ]
        outcomes = await asyncio.gather(*runs)
        found = await client.get_by_correlation_ids("flow", keys, include_closed=True)
    assert {key: len(ids) for key, ids in found.items()} == dict.fromkeys(keys, 1)
    assert sorted(set(outcomes)) == ["reused", "started"]
    assert outcomes.count("started") == len(keys)


async def test_a_start_left_without_its_record_is_found_by_correlation_id(
    postgres_dsn: str,
) -> None:
    async with conductor() as client, PostgresStore(postgres_dsn) as store:
        # What replica r1 left when it was killed between Conductor's answer and the record:
        # its claim, and the workflow, on Conductor only.
        await store.claim_start("order-7", "r1#before-the-kill", 60)
        lost = str(await client.start_workflow("flow", correlation_id="order-7"))
        # r1 runs again; a newer event of the key arrives (not a redelivery).
        restarted = Executor(client, store, replica_id="r1")
        plan, ctx = delivery("order-7", 100)
        assert await restarted.execute(plan, ctx) == "reused"
        assert ctx.workflow_ids == [lost]
        assert await store.find_start("order-7") == lost
        assert await workflows_of_key(client, "order-7") == [lost]


async def test_an_expired_claim_of_another_replica_puts_the_key_in_doubt(
    postgres_dsn: str,
) -> None:
    async with conductor() as client, PostgresStore(postgres_dsn) as store:
        await store.claim_start("order-8", "r1#gone", 0.3)
        lost = str(await client.start_workflow("flow", correlation_id="order-8"))
        other = Executor(client, store, replica_id="r2")
        plan, ctx = delivery("order-8", 101)
        # r2 waits for r1's claim until its lease ran out, then asks Conductor
        assert await other.execute(plan, ctx) == "reused"
        assert await store.find_start("order-8") == lost
        assert await workflows_of_key(client, "order-8") == [lost]


class _LateRecorder:
    """Conductor as seen by a replica whose claim ran out mid-call: while its start is on
    the way, another replica starts and records the key first."""

    def __init__(self, client: ConductorClient, store: PostgresStore) -> None:
        self._client, self._store = client, store
        self.winner: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def start_workflow(self, **params: Any) -> str:
        self.winner = str(await self._client.start_workflow(**params))
        await self._store.record_start(params["correlation_id"], self.winner, "orders")
        return str(await self._client.start_workflow(**params))


async def test_a_start_the_store_refuses_is_undone_and_counted_so(postgres_dsn: str) -> None:
    async with conductor() as client, PostgresStore(postgres_dsn) as store:
        late = _LateRecorder(client, store)
        plan, ctx = delivery("order-9", 102)
        assert await Executor(late, store, replica_id="r3").execute(plan, ctx) == "undone"
        assert ctx.workflow_ids == [late.winner]  # the event gets the recorded workflow
        ids = await workflows_of_key(client, "order-9")
        [duplicate] = [wf for wf in ids if wf != late.winner]
        undone = await client.get_workflow(duplicate, include_tasks=False)
        kept = await client.get_workflow(str(late.winner), include_tasks=False)
    assert (undone.status, kept.status) == ("TERMINATED", "RUNNING")
    assert f"recorded workflow {late.winner}" in str(undone.reason_for_incompletion)


async def test_one_process_on_sqlite_finds_its_lost_start_after_a_crash(tmp_path: Path) -> None:
    async with conductor() as client:
        async with SqliteStore(tmp_path / "g.db") as store:  # the process killed mid-start
            await store.claim_start("order-5", "host-41#a1", 60)
            lost = str(await client.start_workflow("flow", correlation_id="order-5"))
        async with SqliteStore(tmp_path / "g.db") as store:  # restarted: a new pid, a new id
            plan, ctx = delivery("order-5", 103)  # a newer event of the key, not a redelivery
            assert await Executor(client, store).execute(plan, ctx) == "reused"
            assert await store.find_start("order-5") == lost
        assert await workflows_of_key(client, "order-5") == [lost]

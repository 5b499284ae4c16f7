"""Daemon test helpers: a dev server, gateway settings for the real brokers, produce/consume.

`kafka` runs a test on both Kafka brokers the project supports, in the same run: Tansu (the
light default, no idempotent producer) and Apache Kafka (what users run, with the idempotent
producer on, for the gateway and for the test's own producers).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from gateway.app import Gateway
from gateway.conductor.client import ConductorClient
from gateway.devserver.server import DevServer
from gateway.rules.loader import parse_rules
from gateway.settings import Settings
from gateway.tracing import Tracing


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True, slots=True)
class KafkaBroker:
    """A Kafka broker under test: where it is and whether producers use idempotence."""

    name: str  # tansu | apache
    bootstrap: str
    idempotence: bool

    def config(self, **extra: Any) -> dict[str, Any]:
        """The `kafka` section of a gateway config file for this broker."""
        return {
            "bootstrap_servers": self.bootstrap,
            "enable_idempotence": self.idempotence,
            **extra,
        }


@pytest.fixture(params=["tansu", "apache"])
def kafka(request: pytest.FixtureRequest) -> KafkaBroker:
    """Tansu (idempotence off: it has no InitProducerId) or Apache Kafka (idempotence on)."""
    if request.param == "tansu":
        return KafkaBroker("tansu", request.getfixturevalue("kafka_bootstrap"), False)
    return KafkaBroker("apache", request.getfixturevalue("apache_kafka_bootstrap"), True)


@pytest.fixture
async def devserver() -> AsyncIterator[DevServer]:
    async with DevServer(port=0) as server:
        yield server


@pytest.fixture
async def conductor(devserver: DevServer) -> AsyncIterator[ConductorClient]:
    async with ConductorClient(devserver.url, flavor="oss", transport="httpx") as client:
        yield client


@dataclass(frozen=True, slots=True)
class ConductorServer:
    """A Conductor under test: its API URL, the gateway's `conductor.flavor` for it, a client."""

    kind: str  # oss | orkes (a fresh dev server of that flavour) | real (Conductor OSS)
    url: str
    flavor: str
    client: ConductorClient


@contextlib.asynccontextmanager
async def conductor_server(
    kind: str, request: pytest.FixtureRequest
) -> AsyncIterator[ConductorServer]:
    """`oss` or `orkes`: a fresh dev server of that flavour; `real`: the run's Conductor OSS
    (shared by the tests, which use unique workflow names as they would on a shared server)."""
    async with contextlib.AsyncExitStack() as stack:
        if kind == "real":
            url, flavor = request.getfixturevalue("conductor_oss_url"), "oss"
        else:
            server = await stack.enter_async_context(DevServer(port=0, flavor=kind))
            url, flavor = server.url, kind
        client = ConductorClient(url, flavor=flavor, transport="httpx")
        await stack.enter_async_context(client)
        yield ConductorServer(kind, url, flavor, client)


@pytest.fixture(params=["oss", "real"])
async def oss_conductor(request: pytest.FixtureRequest) -> AsyncIterator[ConductorServer]:
    """The dev server (OSS flavour), then the real Conductor OSS."""
    async with conductor_server(request.param, request) as server:
        yield server


def wait_workflow(name: str) -> dict[str, Any]:
    """A workflow that waits (RUNNING) until signalled, then completes."""
    return {
        "name": name,
        "version": 1,
        "tasks": [{"name": "wait", "taskReferenceName": "wait_ref", "type": "WAIT"}],
        "timeoutSeconds": 0,
    }


def make_settings(
    tmp_path: Path,
    *,
    conductor_url: str,
    kafka_bootstrap: str = "127.0.0.1:1",
    amqp_url: str = "amqp://guest:guest@127.0.0.1:1/",
    idempotence: bool = False,
    **extra: Any,
) -> Settings:
    kafka = {
        "bootstrap_servers": [kafka_bootstrap],
        "group_id": unique("gw"),
        "enable_idempotence": idempotence,
        "session_timeout_ms": 6000,
        "revoke_drain_seconds": 5.0,
        **extra.pop("kafka", {}),
    }
    return Settings(
        kafka=kafka,
        amqp={"url": amqp_url, **extra.pop("amqp", {})},
        conductor={
            "url": conductor_url,
            "flavor": "oss",
            "request_timeout": 5.0,
            **extra.pop("conductor", {}),
        },
        store={"sqlite_path": tmp_path / "gateway.db"},
        admin=extra.pop("admin", {"port": 0}),
        shutdown_grace_seconds=extra.pop("shutdown_grace_seconds", 10.0),
        **extra,
    )


@contextlib.asynccontextmanager
async def running(
    settings: Settings, rules: str, tracing: Tracing | None = None
) -> AsyncIterator[Gateway]:
    """A gateway serving in the background; stopped (drained) when the block ends."""
    async with Gateway(settings, ruleset=parse_rules(rules), tracing=tracing) as gateway:
        task = asyncio.create_task(gateway.serve())
        try:
            yield gateway
        finally:
            gateway.request_stop()
            await asyncio.wait_for(task, 60)


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def producer(bootstrap: str, *, idempotence: bool = False) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=idempotence, acks="all")
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


async def committed_and_end(
    bootstrap: str, group: str, topic: str, partitions: int
) -> tuple[dict[int, int], dict[int, int]]:
    """(committed offset, end offset) per partition, read by a separate consumer.

    The end offset is the high-water mark of a fetch: Tansu answers ListOffsets(latest) with
    the wrong value once a partition holds multi-record batches, so `end_offsets()` is not used.
    On Apache Kafka the high-water mark is the end too (it counts transaction markers, which a
    caught-up consumer commits past).
    """
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        committed = {tp.partition: (await consumer.committed(tp)) or 0 for tp in tps}
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        for _ in range(50):
            if all(consumer.highwater(tp) is not None for tp in tps):
                break
            await consumer.getmany(timeout_ms=200, max_records=1)
        end = {tp.partition: consumer.highwater(tp) or 0 for tp in tps}
    finally:
        await consumer.stop()
    return committed, end


async def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[Any]:
    """Read `count` records from the start of `topic` (no group)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(timeout):
            while len(records) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for recs in batch.values():
                    records.extend(recs)
    finally:
        await consumer.stop()
    return records


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 30.0, interval: float = 0.2
) -> None:
    """Poll `check` until it is true; fail with a clear message at the deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if await check():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def workflows_of(client: ConductorClient, name: str) -> list[Any]:
    result = await client.search(query=f"workflowType = {name}", size=5000)
    return list(result.results)

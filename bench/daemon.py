"""End-to-end daemon throughput: Kafka events -> gateway -> workflow starts, against a baseline.

Run: .venv/bin/python bench/daemon.py [N]
Both runs use the same in-process dev server and a Tansu broker on loopback:

- baseline: N `start_workflow` calls straight from the client (64 concurrent): the ceiling
  of the dev server plus the HTTP client on this machine.
- gateway: N events in a 4-partition topic, consumed (dedupe store, per-key ordering,
  watermark commits) into one workflow start each; timed from the first event taken to the
  last one settled (the consumer group join, ~5 s on Tansu, is not counted). Twice: events
  arriving while the gateway runs, and a backlog present before it started.

The interesting number is the ratio gateway / baseline (the cost of reliable consumption).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from gateway.app import Gateway
from gateway.conductor.client import ConductorClient
from gateway.devserver.brokers import Tansu
from gateway.devserver.server import DevServer
from gateway.rules.loader import parse_rules
from gateway.settings import Settings

WORKFLOW = {
    "name": "bench",
    "version": 1,
    "tasks": [{"name": "w", "taskReferenceName": "w", "type": "WAIT"}],
}


async def baseline(client: ConductorClient, n: int) -> float:
    sem = asyncio.Semaphore(64)

    async def one(i: int) -> None:
        async with sem:
            await client.start_workflow("bench", correlation_id=f"b{i}")

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - start)


async def create(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 4, 1)])
    await admin.close()


async def fill(bootstrap: str, topic: str, n: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    for i in range(n):
        body = json.dumps({"id": f"g{i}"}).encode()
        await producer.send(topic, body, key=f"k{i % 257}".encode(), partition=i % 4)
    await producer.stop()


RULES = """
version: 1
rules:
  - name: start
    source: {{topic: {topic}}}
    start_workflow: {{name: bench, correlation_id: "${{body.id}}"}}
"""


async def through_gateway(
    server: DevServer, bootstrap: str, n: int, tmp: Path, *, backlog: bool
) -> float:
    """Events/s from the first event taken to the last settled. `backlog`: the events are
    in the topic before the gateway starts (every one is checked against the store, since a
    previous owner may have processed it); otherwise they arrive while it runs."""
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    await create(bootstrap, topic)
    if backlog:
        await fill(bootstrap, topic, n)
    settings = Settings(
        kafka={"bootstrap_servers": [bootstrap], "group_id": topic, "enable_idempotence": False},
        conductor={"url": server.url, "flavor": "oss"},
        store={"sqlite_path": tmp / f"{topic}.db"},
        admin={"port": 0},
    )
    async with Gateway(settings, ruleset=parse_rules(RULES.format(topic=topic))) as gateway:
        task = asyncio.create_task(gateway.serve())
        metrics = gateway.metrics
        assert gateway.kafka is not None
        while not gateway.kafka.consumer.assignment():
            await asyncio.sleep(0.01)
        feeding = None if backlog else asyncio.create_task(fill(bootstrap, topic, n))
        while metrics.total("gateway_events_received_total") == 0:
            await asyncio.sleep(0.001)
        start = time.perf_counter()
        while metrics.total("gateway_events_settled_total") < n:
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - start
        if feeding is not None:
            await feeding
        gateway.request_stop()
        await task
    return n / elapsed


async def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    broker = Tansu()
    await asyncio.to_thread(broker.start)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with (
                DevServer(port=0) as server,
                ConductorClient(server.url, flavor="oss") as client,
            ):
                await client.register_workflow_def(WORKFLOW)
                base = await baseline(client, n)
                tmp_path = Path(tmp)
                stream = await through_gateway(server, broker.bootstrap, n, tmp_path, backlog=False)
                backlog = await through_gateway(server, broker.bootstrap, n, tmp_path, backlog=True)
    finally:
        await asyncio.to_thread(broker.stop)
    print(f"events: {n} (4 partitions, 257 keys; dev server in the same process)")
    print(f"baseline  client start_workflow, 64 concurrent  : {base:7.0f} starts/s")
    print(
        f"gateway   events arriving while it runs          : {stream:7.0f} events/s"
        f"  ratio {stream / base:.2f}"
    )
    print(
        f"gateway   backlog (each start checked in store)  : {backlog:7.0f} events/s"
        f"  ratio {backlog / base:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())

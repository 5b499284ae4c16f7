"""Interop with librdkafka, the most used Kafka client, through confluent-kafka: what a user of
`gateway dev` sees when their services produce and consume with it.

On Apache Kafka (`gateway dev --kafka apache`) a confluent-kafka producer's events start
workflows, and a confluent-kafka consumer in a consumer group reads the completion CloudEvents
from `order-status`. On Tansu (the default) `gateway dev` says that librdkafka clients need
`--kafka apache`, and the reason it gives is pinned: Tansu holds a librdkafka consumer's
JoinGroup for half of session.timeout.ms.

confluent-kafka blocks: its consumer polls in a thread with 0.1 s timeouts and its producer
flushes in a thread, so the event loop (and the test's own polling) never stalls.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cloudevents.v1.kafka import KafkaMessage, from_structured
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from tests.daemon.conftest import eventually
from tests.devstack import banner_ports, read_banner, start_dev, stop_tree

pytestmark = [pytest.mark.brokers, pytest.mark.slow]

STRUCTURED = "application/cloudevents+json; charset=UTF-8"


@dataclasses.dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]


class GroupReader:
    """A confluent-kafka consumer in a consumer group, subscribed to one topic, polled in a
    thread. `records`, `assigned` and `joined_after` (seconds from subscribe to the first
    assignment) fill in as it runs; on stop it commits what it read and records `committed`."""

    def __init__(self, bootstrap: str, topic: str, **config: Any) -> None:
        self.config = {
            "bootstrap.servers": bootstrap,
            "group.id": f"librdkafka-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **config,
        }
        self.topic = topic
        self.records: list[Record] = []
        self.errors: list[KafkaError] = []
        self.assigned: list[tuple[str, int]] = []
        self.joined_after: float | None = None
        self.committed: dict[tuple[str, int], int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        consumer = Consumer(self.config)
        began = time.monotonic()

        def on_assign(_: Consumer, partitions: list[TopicPartition]) -> None:
            if self.joined_after is None:
                self.joined_after = time.monotonic() - began
            self.assigned = [(p.topic, p.partition) for p in partitions]

        consumer.subscribe([self.topic], on_assign=on_assign)
        try:
            while not self.stop.is_set():
                message = consumer.poll(0.1)
                if message is not None:
                    self._keep(message)
            if self.records:
                consumer.commit(asynchronous=False)
                wanted = [TopicPartition(t, p) for t, p in self.assigned]
                done = consumer.committed(wanted, timeout=10)
                self.committed = {(tp.topic, tp.partition): tp.offset for tp in done}
        finally:
            consumer.close()

    def _keep(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            self.errors.append(error)
            return
        self.records.append(
            Record(
                topic=message.topic(),
                partition=message.partition(),
                offset=message.offset(),
                key=message.key(),
                value=message.value(),
                headers=dict(message.headers() or []),
            )
        )


@contextlib.asynccontextmanager
async def group_reader(bootstrap: str, topic: str, **config: Any) -> AsyncIterator[GroupReader]:
    reader = GroupReader(bootstrap, topic, **config)
    running = asyncio.create_task(asyncio.to_thread(reader.run))
    try:
        yield reader
    finally:
        reader.stop.set()
        await running


async def produce(bootstrap: str, topic: str, events: list[tuple[str, dict[str, Any]]]) -> None:
    """Produce JSON events (key, body) with a confluent-kafka producer as a service would:
    idempotent, acks=all, every delivery report checked. (Both brokers grant librdkafka's
    InitProducerId; Tansu 0.6.0-133 answered it with a producer id.)"""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    reports: list[KafkaError | None] = []
    for key, body in events:
        producer.produce(
            topic,
            json.dumps(body).encode(),
            key=key.encode(),
            on_delivery=lambda error, _message: reports.append(error),
        )
    assert await asyncio.to_thread(producer.flush, 30) == 0, "undelivered events"
    assert reports == [None] * len(events), reports


async def waiting_for_payment(http: httpx.AsyncClient, api: str, order_id: str) -> str:
    """The id of the order's workflow once it waits at its payment task."""
    url = f"{api}/workflow/order-fulfilment/correlated/{order_id}"
    found: list[dict[str, Any]] = []

    async def waiting() -> bool:
        params = {"includeClosed": "true", "includeTasks": "true"}
        found[:] = (await http.get(url, params=params)).json()
        tasks = found[0].get("tasks", []) if found else []
        return any(
            t["referenceTaskName"] == "wait_payment" and t["status"] == "IN_PROGRESS" for t in tasks
        )

    try:
        await eventually(waiting, timeout=60)
    except AssertionError:
        state = json.dumps(found)[:800]
        raise AssertionError(f"{order_id} never waited for its payment: {state}") from None
    return str(found[0]["workflowId"])


async def interrupt(process: asyncio.subprocess.Process, draining: asyncio.Task[bytes]) -> None:
    """Ctrl-C, as a user stops `gateway dev`: it must exit 0."""
    process.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(process.wait(), 90) == 0
    await draining


def order_created(order_id: str) -> dict[str, Any]:
    return {
        "type": "OrderCreated",
        "orderId": order_id,
        "customer": "ada",
        "items": [{"sku": "book", "qty": 1}],
        "total": 42.5,
    }


async def test_confluent_kafka_producer_starts_workflows_and_group_reads_completions(
    tmp_path: Path,
) -> None:
    process = await start_dev("--kafka", "apache", "--no-amqp", dev_dir=tmp_path)
    assert process.stdout is not None
    try:
        banner = "".join(await read_banner(process.stdout, 300))
        draining = asyncio.create_task(process.stdout.read())  # the pipe must never fill
        assert "librdkafka" not in banner, "Apache Kafka needs no librdkafka warning"
        ports = banner_ports(banner, "Apache", amqp=False)
        bootstrap = f"127.0.0.1:{ports['kafka']}"
        api = f"http://127.0.0.1:{ports['conductor']}/api"
        paid, cancelled = (f"o-{uuid.uuid4().hex[:8]}" for _ in range(2))
        # librdkafka's defaults (session.timeout.ms 45 s): the group forms at once on Apache.
        async with group_reader(bootstrap, "order-status") as reader, httpx.AsyncClient() as http:
            await produce(bootstrap, "orders", [(o, order_created(o)) for o in (paid, cancelled)])
            workflow = {o: await waiting_for_payment(http, api, o) for o in (paid, cancelled)}
            # The payment arrives (what the AMQP payment rule does), the other order is
            # cancelled by a second confluent-kafka event.
            signalled = await http.post(
                f"{api}/tasks/{workflow[paid]}/wait_payment/COMPLETED",
                json={"paymentId": "p-1", "amount": 42.5},
            )
            assert signalled.status_code == 200, signalled.text
            cancel = {"type": "OrderCancelled", "orderId": cancelled, "reason": "changed mind"}
            await produce(bootstrap, "orders", [(cancelled, cancel)])

            async def both_read() -> bool:
                return len(reader.records) >= 2

            await eventually(both_read, timeout=60)
        await interrupt(process, draining)
    finally:
        await stop_tree(process)

    assert reader.errors == []
    assert reader.assigned == [("order-status", 0)]
    assert reader.joined_after is not None and reader.joined_after < 10, reader.joined_after
    events = {}
    for record in reader.records:
        assert record.headers["content-type"].decode() == STRUCTURED
        # What a user's code does with it: the CloudEvents SDK's Kafka binding.
        event = from_structured(KafkaMessage(record.headers, record.key, record.value))
        assert record.key == event["subject"].encode()  # per-workflow ordering
        # The id is `<workflowId>:<status>:<end time>`; keep it without the run's end time.
        assert event["id"].endswith(f":{event.data['endTime']}")
        events[event["id"].rsplit(":", 1)[0]] = event
    done, gone = f"{workflow[paid]}:COMPLETED", f"{workflow[cancelled]}:TERMINATED"
    assert sorted(events) == sorted([done, gone]), list(events)
    for event_id, status, order_id in ((done, "completed", paid), (gone, "terminated", cancelled)):
        event = events[event_id]
        assert event["specversion"] == "1.0"
        assert event["type"] == f"io.conductor.workflow.{status}"
        assert event["subject"] == workflow[order_id]
        assert event["source"] == "/conductor-gateway/rules/start-order"
        assert event.data["workflowType"] == "order-fulfilment"
        assert event.data["correlationId"] == order_id
        assert event.data["status"] == status.upper()
    assert events[done].data["output"]["payment"] == {"paymentId": "p-1", "amount": 42.5}
    assert "cancelled by customer: changed mind" in events[gone].data["reasonForIncompletion"]
    # The group's offsets live on the broker: what it read is committed.
    last = max(record.offset for record in reader.records)
    assert reader.committed == {("order-status", 0): last + 1}


async def test_gateway_dev_on_tansu_sends_librdkafka_clients_to_apache_kafka(
    tmp_path: Path,
) -> None:
    process = await start_dev("--no-amqp", dev_dir=tmp_path)
    assert process.stdout is not None
    try:
        banner = "".join(await read_banner(process.stdout, 120))
        draining = asyncio.create_task(process.stdout.read())
        note = banner.split("Try:")[0]  # next to the addresses, before the examples
        advice = "librdkafka clients (confluent-kafka, kcat, ...): run `gateway dev --kafka apache`"
        assert advice in note, banner
        ports = banner_ports(banner, "Tansu", amqp=False)
        bootstrap = f"127.0.0.1:{ports['kafka']}"
        api = f"http://127.0.0.1:{ports['conductor']}/api"
        order = f"o-{uuid.uuid4().hex[:8]}"
        # What the note says, pinned: Tansu holds a librdkafka consumer's JoinGroup for half of
        # session.timeout.ms (22.5 s at librdkafka's default 45 s; 6 s here keeps this short),
        # while producing and fetching work.
        session = {"session.timeout.ms": 6000}
        async with group_reader(bootstrap, "order-status", **session) as reader:
            async with httpx.AsyncClient() as http:
                await produce(bootstrap, "orders", [(order, order_created(order))])
                workflow = await waiting_for_payment(http, api, order)
                cancel = {"type": "OrderCancelled", "orderId": order, "reason": "changed mind"}
                await produce(bootstrap, "orders", [(order, cancel)])

            async def read() -> bool:
                return bool(reader.records)

            await eventually(read, timeout=60)
        await interrupt(process, draining)
    finally:
        await stop_tree(process)

    assert reader.errors == []
    assert reader.assigned == [("order-status", 0)]
    assert reader.joined_after is not None and reader.joined_after >= 2.5, reader.joined_after
    [record] = reader.records
    event = from_structured(KafkaMessage(record.headers, record.key, record.value))
    assert event["id"] == f"{workflow}:TERMINATED:{event.data['endTime']}"

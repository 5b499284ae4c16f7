"""Read back stored messages (a dead-letter topic or queue) for `gateway dlq replay`.

Kafka: a consumer group per replay filter (`<group_id>.dlq-replay.<rule or all>`) reads from
its last commit to the end and commits what it handled, so a replay is not repeated.
AMQP: basic.get until the queue is empty; handled messages are acked, skipped ones are put
back (requeued) when the reader closes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aio_pika
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from gateway.plan import Destination
from gateway.settings import Settings
from gateway.sources.kafka_config import security_options

IDLE_POLLS = 3  # empty polls (of 0.5 s) that mean "caught up"


@dataclass(slots=True)
class StoredMessage:
    body: bytes
    headers: dict[str, str]
    key: str | None
    correlation_id: str | None
    handle: Any  # the broker's message, for settling


@contextlib.asynccontextmanager
async def kafka_messages(
    settings: Settings, topic: str, group_suffix: str
) -> AsyncIterator[tuple[AsyncIterator[StoredMessage], Any]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=f"{settings.kafka.group_id}.dlq-replay.{group_suffix}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **security_options(settings.kafka),
    )
    await consumer.start()

    async def done(message: StoredMessage) -> None:
        record = message.handle
        tp = TopicPartition(record.topic, record.partition)
        await consumer.commit({tp: record.offset + 1})

    async def read() -> AsyncIterator[StoredMessage]:
        idle = 0
        while idle < IDLE_POLLS:
            batch = await consumer.getmany(timeout_ms=500)
            idle = 0 if batch else idle + 1
            for records in batch.values():
                for r in records:
                    headers = {k: (v or b"").decode("utf-8", "replace") for k, v in r.headers}
                    key = r.key.decode("utf-8", "replace") if r.key is not None else None
                    yield StoredMessage(
                        r.value or b"", headers, key, headers.get("correlation-id"), r
                    )

    try:
        yield read(), done
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def amqp_messages(
    settings: Settings, queue_name: str
) -> AsyncIterator[tuple[AsyncIterator[StoredMessage], Any]]:
    connection = await aio_pika.connect(settings.amqp.url.get_secret_value())
    held: list[Any] = []
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)

        async def done(message: StoredMessage) -> None:
            await message.handle.ack()

        async def read() -> AsyncIterator[StoredMessage]:
            while (m := await queue.get(no_ack=False, fail=False)) is not None:
                held.append(m)
                headers = {str(k): _text(v) for k, v in (m.headers or {}).items()}
                yield StoredMessage(m.body, headers, None, m.correlation_id, m)

        yield read(), done
        for message in held:
            if not message.processed:
                await message.nack(requeue=True)
    finally:
        await asyncio.shield(connection.close())


def open_stored(settings: Settings, destination: Destination, group_suffix: str) -> Any:
    """The reader for a dead-letter destination: `kafka:<topic>` or `amqp:<queue>`."""
    if destination.kind == "kafka":
        return kafka_messages(settings, destination.name, group_suffix)
    if destination.name:
        raise ValueError("replay reads a queue: give amqp:<queue>, not an exchange")
    return amqp_messages(settings, destination.routing_key)


async def ensure_topics(bootstrap: str | list[str], topics: list[str]) -> None:
    """Create the topics that do not exist yet (one partition; for the local dev stack)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, 1, 1) for t in topics if t not in existing]
        if missing:
            await admin.create_topics(missing)
    finally:
        await admin.close()


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)

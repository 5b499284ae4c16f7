"""Read back stored messages (a dead-letter topic or queue) for `gateway dlq replay`.

A replay reads only what was stored when it started: with the gateway running, a replayed
message that fails again is dead-lettered behind that point and is left for the next replay,
so one replay always ends.

Kafka: the end of each partition is snapshotted (the high-water mark of the first fetch; Tansu
answers ListOffsets(latest) wrongly for multi-record batches) and a consumer group per replay
filter (`<group_id>.dlq-replay.<rule or all>`) reads from its last commit up to that end and
commits what was replayed, so a replay is not repeated. A message kept in the topic (refused)
stops its partition there: the commit cannot pass it without losing it, and reading on would
replay the messages behind it again next time.
AMQP: basic.get at most the queue's message count at the start; replayed messages are acked,
kept ones are put back (requeued) when the reader closes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import aio_pika
from aiokafka import AIOKafkaConsumer, TopicPartition

from gateway.plan import Destination
from gateway.settings import Settings
from gateway.sources.kafka_config import security_options

IDLE_POLLS = 6  # empty polls (of 0.5 s) that mean "caught up" when an end is never reached


@dataclass(slots=True)
class StoredMessage:
    body: bytes
    headers: dict[str, str]
    key: str | None
    correlation_id: str | None
    where: str  # for reports: `kafka:<topic> partition P offset O` or `amqp:<queue> #N`
    handle: Any  # the broker's message, for settling


class StoredReader(Protocol):
    def messages(self) -> AsyncIterator[StoredMessage]: ...

    async def done(self, message: StoredMessage) -> None:
        """Replayed: remove it from the dead letters (commit / ack)."""

    async def keep(self, message: StoredMessage) -> None:
        """Refused: leave it where it is."""


class KafkaStored:
    def __init__(self, consumer: AIOKafkaConsumer, topic: str) -> None:
        self._consumer = consumer
        self._topic = topic
        self._next: dict[TopicPartition, int] = {}  # the next offset to read, per partition
        self._end: dict[TopicPartition, int] = {}  # the snapshot: read below this offset
        self._buffered: list[Any] = []  # records fetched while taking the snapshot
        self._stopped: set[TopicPartition] = set()

    async def start(self) -> None:
        # The fetched metadata itself: topics() leaves the consumer's own view as it was, and on
        # Apache Kafka that view lacks the topic, so partitions_for_topic() answered None.
        cluster = await self._consumer._client.fetch_all_metadata()
        partitions = cluster.partitions_for_topic(self._topic)
        if not partitions:
            raise ValueError(f"Kafka topic '{self._topic}' does not exist")
        tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        self._consumer.assign(tps)
        for tp in tps:
            self._next[tp] = await self._consumer.position(tp)
        await self._snapshot(tps)

    async def _snapshot(self, tps: list[TopicPartition]) -> None:
        for _ in range(100):
            if all(self._consumer.highwater(tp) is not None for tp in tps):
                break
            batch = await self._consumer.getmany(timeout_ms=200)
            for records in batch.values():
                self._buffered.extend(records)
        else:
            raise ValueError(f"Kafka topic '{self._topic}': no fetch answer within 20 s")
        self._end = {tp: int(self._consumer.highwater(tp) or 0) for tp in tps}

    async def messages(self) -> AsyncIterator[StoredMessage]:
        for record in self._buffered:
            if self._take(record):
                yield self._message(record)
        idle = 0
        while not self._finished() and idle < IDLE_POLLS:
            batch = await self._consumer.getmany(timeout_ms=500)
            idle = 0 if batch else idle + 1
            for records in batch.values():
                for record in records:
                    if self._take(record):
                        yield self._message(record)

    def _take(self, record: Any) -> bool:
        tp = TopicPartition(record.topic, record.partition)
        if tp in self._stopped:
            return False
        if record.offset >= self._end[tp]:
            self._stop(tp)  # stored after the replay started
            return False
        self._next[tp] = record.offset + 1
        return True

    def _finished(self) -> bool:
        return all(tp in self._stopped or self._next[tp] >= end for tp, end in self._end.items())

    def _stop(self, tp: TopicPartition) -> None:
        self._stopped.add(tp)
        self._consumer.pause(tp)

    def _message(self, r: Any) -> StoredMessage:
        headers = {k: (v or b"").decode("utf-8", "replace") for k, v in r.headers}
        key = r.key.decode("utf-8", "replace") if r.key is not None else None
        where = f"kafka:{r.topic} partition {r.partition} offset {r.offset}"
        return StoredMessage(r.value or b"", headers, key, headers.get("correlation-id"), where, r)

    async def done(self, message: StoredMessage) -> None:
        record = message.handle
        tp = TopicPartition(record.topic, record.partition)
        await self._consumer.commit({tp: record.offset + 1})

    async def keep(self, message: StoredMessage) -> None:
        record = message.handle
        self._stop(TopicPartition(record.topic, record.partition))


@contextlib.asynccontextmanager
async def kafka_messages(
    settings: Settings, topic: str, group_suffix: str
) -> AsyncIterator[KafkaStored]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=f"{settings.kafka.group_id}.dlq-replay.{group_suffix}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **security_options(settings.kafka),
    )
    await consumer.start()
    try:
        reader = KafkaStored(consumer, topic)
        await reader.start()
        yield reader
    finally:
        await consumer.stop()


class AmqpStored:
    def __init__(self, queue: Any, count: int) -> None:
        self._queue = queue
        self._count = count  # the snapshot: messages ready when the replay started
        self.held: list[Any] = []

    async def messages(self) -> AsyncIterator[StoredMessage]:
        name = self._queue.name
        for number in range(1, self._count + 1):
            m = await self._queue.get(no_ack=False, fail=False)
            if m is None:
                return
            self.held.append(m)
            headers = {str(k): _text(v) for k, v in (m.headers or {}).items()}
            yield StoredMessage(
                m.body, headers, None, m.correlation_id, f"amqp:{name} #{number}", m
            )

    async def done(self, message: StoredMessage) -> None:
        await message.handle.ack()

    async def keep(self, message: StoredMessage) -> None:
        """Held unacked until the reader closes, so this replay does not get it again."""

    async def release(self) -> None:
        for message in self.held:
            if not message.processed:
                await message.nack(requeue=True)


@contextlib.asynccontextmanager
async def amqp_messages(settings: Settings, queue_name: str) -> AsyncIterator[AmqpStored]:
    connection = await aio_pika.connect(settings.amqp.url.get_secret_value())
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        reader = AmqpStored(queue, int(queue.declaration_result.message_count or 0))
        yield reader
        await reader.release()
    finally:
        await asyncio.shield(connection.close())


def open_stored(
    settings: Settings, destination: Destination, group_suffix: str
) -> contextlib.AbstractAsyncContextManager[StoredReader]:
    """The reader for a dead-letter destination: `kafka:<topic>` or `amqp:<queue>`."""
    if destination.kind == "kafka":
        return kafka_messages(settings, destination.name, group_suffix)
    if destination.name:
        raise ValueError("replay reads a queue: give amqp:<queue>, not an exchange")
    return amqp_messages(settings, destination.routing_key)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)

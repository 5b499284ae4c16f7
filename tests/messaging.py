"""Plain broker clients for checking what the gateway published (no gateway code inside)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from typing import Any

import aio_pika
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from gateway.settings import Settings


def settings_for(kafka_bootstrap: str, amqp_url: str) -> Settings:
    return Settings(
        kafka={"bootstrap_servers": [kafka_bootstrap], "enable_idempotence": False},
        amqp={"url": amqp_url},
    )


def dead_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def new_topic(bootstrap: str) -> str:
    topic = f"t-{uuid.uuid4().hex}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    return topic


async def consume_kafka(
    bootstrap: str, topic: str, count: int, timeout: float = 20, linger: float = 0.0
) -> list[Any]:
    """Read from the start of `topic` until `count` records arrived, then `linger` seconds
    more so that records beyond `count` show up too."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"g-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(timeout):
            while len(records) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for messages in batch.values():
                    records.extend(messages)
        deadline = asyncio.get_running_loop().time() + linger
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                records.extend(messages)
    finally:
        await consumer.stop()
    return records


async def declare_queue(amqp_url: str, name: str | None = None) -> str:
    name = name or f"q-{uuid.uuid4().hex}"
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(name, durable=True)
    return name


async def get_amqp(
    amqp_url: str, queue: str, count: int, timeout: float = 20
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect(amqp_url)
    messages: list[aio_pika.abc.AbstractIncomingMessage] = []
    async with connection:
        channel = await connection.channel()
        q = await channel.declare_queue(queue, durable=True, passive=True)
        async with asyncio.timeout(timeout):
            while len(messages) < count:
                message = await q.get(fail=False)
                if message is None:
                    await asyncio.sleep(0.05)
                    continue
                await message.ack()
                messages.append(message)
    return messages


async def queue_depth(amqp_url: str, queue: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        q = await channel.declare_queue(queue, durable=True, passive=True)
        return int(q.declaration_result.message_count or 0)

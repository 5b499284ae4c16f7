"""The harness's brokers are real: Kafka consumer groups commit, RabbitMQ confirms and acks."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

pytestmark = pytest.mark.brokers


async def test_kafka_group_member_consumes_and_commits(kafka_bootstrap: str) -> None:
    topic, group = f"t-{uuid.uuid4().hex}", f"g-{uuid.uuid4().hex}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b'{"n": 1}', key=b"k1", headers=[("h", b"v")])
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        message = await asyncio.wait_for(consumer.getone(), 20)
        assert (message.key, message.value) == (b"k1", b'{"n": 1}')
        assert list(message.headers) == [("h", b"v")]
        partition = TopicPartition(topic, message.partition)
        await consumer.commit({partition: message.offset + 1})
        assert await consumer.committed(partition) == message.offset + 1
    finally:
        await consumer.stop()


async def test_rabbitmq_publish_confirmed_consume_and_ack(amqp_url: str) -> None:
    queue_name = f"q-{uuid.uuid4().hex}"
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(queue_name, durable=True)
        confirmation = await channel.default_exchange.publish(
            aio_pika.Message(b'{"n": 1}', message_id="m-1"), routing_key=queue_name
        )
        assert confirmation is not None  # a confirm frame (Basic.Ack) arrived

        message = await queue.get(timeout=10)
        assert message.body == b'{"n": 1}' and message.message_id == "m-1"
        await message.ack()
        # Closing a channel requeues what it did not ack, so a fresh channel sees the truth.
        await channel.close()

        channel = await connection.channel()
        again = await channel.declare_queue(queue_name, durable=True, passive=True)
        assert again.declaration_result.message_count == 0
        await again.delete()

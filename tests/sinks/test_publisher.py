"""Publisher against the real brokers: confirmed publishes, unroutable and dead brokers fail."""

from __future__ import annotations

import asyncio
import time
import uuid

import aio_pika
import pytest

from gateway.errors import PublishError
from gateway.plan import Destination
from gateway.settings import Settings
from gateway.sinks import Publisher
from tests.messaging import (
    consume_kafka,
    dead_port,
    declare_queue,
    get_amqp,
    new_topic,
    settings_for,
)

pytestmark = pytest.mark.brokers


async def test_kafka_publish_lands_with_key_and_headers(
    kafka_bootstrap: str, amqp_url: str
) -> None:
    topic = await new_topic(kafka_bootstrap)
    async with Publisher(settings_for(kafka_bootstrap, amqp_url)) as publisher:
        await publisher.publish(
            Destination.parse(f"kafka:{topic}"),
            b'{"a": 1}',
            key="wf-1",
            headers={"ce_id": "wf-1:COMPLETED"},
            correlation_id="c-1",
        )
    [record] = await consume_kafka(kafka_bootstrap, topic, 1)
    assert record.key == b"wf-1" and record.value == b'{"a": 1}'
    assert dict(record.headers) == {
        "ce_id": b"wf-1:COMPLETED",
        "content-type": b"application/json",
        "correlation-id": b"c-1",
        "kafka_correlationId": b"c-1",  # where a Spring-style requester reads it
    }


async def test_amqp_publish_to_a_queue_is_confirmed_and_persistent(
    kafka_bootstrap: str, amqp_url: str
) -> None:
    queue = await declare_queue(amqp_url)
    async with Publisher(settings_for(kafka_bootstrap, amqp_url)) as publisher:
        await publisher.publish(
            Destination.parse(f"amqp:{queue}"),
            b"{}",
            headers={"cloudEvents:id": "wf-2:FAILED"},
            correlation_id="corr-2",
            content_type="application/json; charset=utf-8",
        )
    [message] = await get_amqp(amqp_url, queue, 1)
    assert message.body == b"{}"
    assert message.correlation_id == "corr-2"
    assert message.message_id == "wf-2:FAILED"
    assert message.content_type == "application/json; charset=utf-8"
    assert message.headers == {"cloudEvents:id": "wf-2:FAILED"}
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT


async def test_amqp_publish_through_an_exchange_and_routing_key(
    kafka_bootstrap: str, amqp_url: str
) -> None:
    exchange, queue = f"x-{uuid.uuid4().hex}", await declare_queue(amqp_url)
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        x = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        q = await channel.get_queue(queue)
        await q.bind(x, "wf.#")
    async with Publisher(settings_for(kafka_bootstrap, amqp_url)) as publisher:
        await publisher.publish(Destination.parse(f"amqp:{exchange}/wf.done"), b"1")
    [message] = await get_amqp(amqp_url, queue, 1)
    assert message.body == b"1" and message.routing_key == "wf.done"


async def test_amqp_unroutable_publish_raises(kafka_bootstrap: str, amqp_url: str) -> None:
    async with Publisher(settings_for(kafka_bootstrap, amqp_url)) as publisher:
        with pytest.raises(PublishError, match="unroutable"):
            await publisher.publish(Destination.parse(f"amqp:nobody-{uuid.uuid4().hex}"), b"x")
        # The channel still works afterwards.
        queue = await declare_queue(amqp_url)
        await publisher.publish(Destination.parse(f"amqp:{queue}"), b"after")
    assert [m.body for m in await get_amqp(amqp_url, queue, 1)] == [b"after"]


async def test_amqp_missing_exchange_raises_and_the_next_publish_recovers(
    kafka_bootstrap: str, amqp_url: str
) -> None:
    async with Publisher(settings_for(kafka_bootstrap, amqp_url)) as publisher:
        with pytest.raises(PublishError):
            await publisher.publish(Destination.parse(f"amqp:no-x-{uuid.uuid4().hex}/k"), b"x")
        queue = await declare_queue(amqp_url)
        await publisher.publish(Destination.parse(f"amqp:{queue}"), b"after")
    assert [m.body for m in await get_amqp(amqp_url, queue, 1)] == [b"after"]


async def test_dead_kafka_fails_within_the_deadline_and_amqp_is_unaffected(
    amqp_url: str,
) -> None:
    settings = Settings(
        kafka={"bootstrap_servers": [f"127.0.0.1:{dead_port()}"], "enable_idempotence": False},
        amqp={"url": amqp_url},
    )
    queue = await declare_queue(amqp_url)
    async with Publisher(settings, timeout=2.0) as publisher:
        started = time.monotonic()
        with pytest.raises(PublishError, match="kafka"):
            await publisher.publish(Destination.parse("kafka:anything"), b"x")
        assert time.monotonic() - started < 6
        # Lazily connected: AMQP works though Kafka is down.
        await publisher.publish(Destination.parse(f"amqp:{queue}"), b"ok")
    assert len(await get_amqp(amqp_url, queue, 1)) == 1


async def test_dead_rabbitmq_fails_with_a_message_without_the_password() -> None:
    settings = Settings(amqp={"url": f"amqp://guest:s3cret@127.0.0.1:{dead_port()}/"})
    async with Publisher(settings, timeout=2.0) as publisher:
        with pytest.raises(PublishError) as info:
            await publisher.publish(Destination.parse("amqp:q"), b"x")
    assert "s3cret" not in str(info.value)
    assert "guest@127.0.0.1" in str(info.value)


async def test_a_stuck_rabbitmq_fails_each_publish_within_its_deadline(
    kafka_bootstrap: str, amqp_url: str
) -> None:
    from urllib.parse import urlsplit

    from tests.proxy import TcpProxy

    parts = urlsplit(amqp_url)
    queue = await declare_queue(amqp_url)
    async with TcpProxy(parts.hostname or "", parts.port or 5672) as proxy:
        url = amqp_url.replace(f":{parts.port}/", f":{proxy.port}/")
        settings = Settings(amqp={"url": url})
        async with Publisher(settings, timeout=1.5) as publisher:
            await publisher.publish(Destination.parse(f"amqp:{queue}"), b"before")
            proxy.frozen.set()
            started = time.monotonic()
            with pytest.raises(PublishError, match="no confirm within"):
                await publisher.publish(Destination.parse(f"amqp:{queue}"), b"stuck")
            assert time.monotonic() - started < 3


async def test_a_kafka_that_accepts_but_never_answers_fails_within_the_deadline(
    amqp_url: str,
) -> None:
    async def black_hole(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # read requests, answer nothing, until the client hangs up
        writer.close()

    server = await asyncio.start_server(black_hole, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        settings = settings_for(f"127.0.0.1:{port}", amqp_url)
        async with Publisher(settings, timeout=1.5) as publisher:
            started = time.monotonic()
            with pytest.raises(PublishError, match="kafka"):
                await publisher.publish(Destination.parse("kafka:t"), b"x")
            assert time.monotonic() - started < 5  # start + stop, each under the deadline
    finally:
        server.close()
        await server.wait_closed()


async def test_a_stuck_kafka_start_does_not_hold_up_amqp_publishes(amqp_url: str) -> None:
    # A broker that accepts connections and never answers: the producer start runs into the
    # deadline. AMQP publishes (dead letters, replies) must not queue behind it.
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client hangs up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = Settings(
        kafka={"bootstrap_servers": [f"127.0.0.1:{port}"], "enable_idempotence": False},
        amqp={"url": amqp_url},
    )
    queue = await declare_queue(amqp_url)
    finished: dict[str, float] = {}
    try:
        async with Publisher(settings, timeout=2.0) as publisher:
            await publisher.publish(Destination.parse(f"amqp:{queue}"), b"warm")

            async def kafka() -> None:
                with pytest.raises(PublishError, match="kafka"):
                    await publisher.publish(Destination.parse("kafka:anything"), b"x")
                finished["kafka"] = time.monotonic()

            async def amqp(n: int) -> None:
                await asyncio.sleep(0.1)  # the Kafka start is under way by now
                await publisher.publish(Destination.parse(f"amqp:{queue}"), b"%d" % n)
                finished[f"amqp{n}"] = time.monotonic()

            started = time.monotonic()
            await asyncio.gather(kafka(), *(amqp(n) for n in range(3)))
    finally:
        server.close()
        await server.wait_closed()
    kafka_took = finished.pop("kafka") - started
    assert kafka_took >= 2.0  # it did wait for its deadline
    # Every AMQP publish finished in well under the Kafka deadline, long before Kafka failed.
    assert all(at - started < kafka_took / 2 for at in finished.values()), finished
    assert len(await get_amqp(amqp_url, queue, 4)) == 4


async def test_a_failed_kafka_start_is_remembered_for_a_while(amqp_url: str) -> None:
    settings = Settings(
        kafka={"bootstrap_servers": [f"127.0.0.1:{dead_port()}"], "enable_idempotence": False},
        amqp={"url": amqp_url},
    )
    async with Publisher(settings, timeout=2.0, retry_after=30.0) as publisher:
        with pytest.raises(PublishError, match="cannot start the producer"):
            await publisher.publish(Destination.parse("kafka:anything"), b"x")
        with pytest.raises(PublishError, match="not retried for 30s"):
            await publisher.publish(Destination.parse("kafka:anything"), b"x")
    async with Publisher(settings, timeout=2.0, retry_after=0.0) as publisher:
        for _ in range(2):  # no memory: every publish tries to connect again
            with pytest.raises(PublishError, match="cannot start the producer"):
                await publisher.publish(Destination.parse("kafka:anything"), b"x")

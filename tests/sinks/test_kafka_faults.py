"""A Kafka broker that stops answering: publishes fail within the deadline, then recover, and
the producer given up on is closed (not left retrying in the background).

The broker (Tansu, or Apache Kafka with the idempotent producer) advertises the proxy's port, so
every producer connection (bootstrap and partition leader) runs through a proxy that can stop
forwarding bytes: a stuck network, where aiokafka's `send_and_wait()` would otherwise wait
"apparently forever" (aiokafka #1101).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from gateway.errors import PublishError
from gateway.plan import Destination
from gateway.settings import Settings
from gateway.sinks import Publisher
from tests.daemon.conftest import eventually
from tests.messaging import consume_kafka, new_topic
from tests.proxy import TcpProxy, proxied_apache_kafka, proxied_tansu

pytestmark = pytest.mark.brokers


@pytest.fixture(params=["tansu", "apache"])
async def proxied_kafka(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[TcpProxy, str, bool]]:
    """(proxy, bootstrap, idempotence): Tansu without, Apache Kafka with the idempotent producer."""
    if request.param == "tansu":
        async with proxied_tansu() as (proxy, bootstrap):
            yield proxy, bootstrap, False
    else:
        async with proxied_apache_kafka() as (proxy, bootstrap):
            yield proxy, bootstrap, True


def kafka_client_tasks() -> list[str]:
    """The running tasks of Kafka clients (aiokafka's), by name."""
    names = [getattr(task.get_coro(), "__qualname__", "") for task in asyncio.all_tasks()]
    return sorted(name for name in names if not name.startswith(("TcpProxy.", "test_")))


async def test_stuck_kafka_fails_within_the_deadline_and_recovers(
    proxied_kafka: tuple[TcpProxy, str, bool],
) -> None:
    proxy, bootstrap, idempotence = proxied_kafka
    topic = await new_topic(bootstrap)
    settings = Settings(kafka={"bootstrap_servers": [bootstrap], "enable_idempotence": idempotence})
    destination = Destination.parse(f"kafka:{topic}")
    async with Publisher(settings, timeout=1.5) as publisher:
        await publisher.publish(destination, b"before", key="k")
        one_producer = kafka_client_tasks()
        proxy.frozen.set()
        started = time.monotonic()
        with pytest.raises(PublishError, match="no acknowledgement within"):
            await publisher.publish(destination, b"stuck", key="k")
        assert time.monotonic() - started < 1.5 + 1
        proxy.frozen.clear()  # the network is back: new connections flow again
        recovering = time.monotonic()
        async with asyncio.timeout(20):
            while True:
                try:
                    await publisher.publish(destination, b"after", key="k")
                    break
                except PublishError:
                    await asyncio.sleep(0.2)
        print(f"recovered in {time.monotonic() - recovering:.1f}s")

        async def one_producer_left() -> bool:
            return kafka_client_tasks() == one_producer

        # The producer given up on is closed: it neither runs on nor holds connections.
        await eventually(one_producer_left, timeout=10)
    values = [r.value for r in await consume_kafka(bootstrap, topic, 2, linger=0.5)]
    # The timed-out record may still arrive (aiokafka retries it): at-least-once, as documented.
    assert values[0] == b"before" and b"after" in values

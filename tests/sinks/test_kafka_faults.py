"""A Kafka broker that stops answering: publishes fail within the deadline, then recover.

Tansu advertises the proxy's port, so every producer connection (bootstrap and partition
leader) runs through a proxy that can stop forwarding bytes: a stuck network, where aiokafka's
`send_and_wait()` would otherwise wait "apparently forever" (aiokafka #1101).
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
from tests.messaging import consume_kafka, new_topic
from tests.proxy import TcpProxy, proxied_tansu

pytestmark = pytest.mark.brokers


@pytest.fixture
async def proxied_kafka() -> AsyncIterator[tuple[TcpProxy, str]]:
    async with proxied_tansu() as proxy_and_bootstrap:
        yield proxy_and_bootstrap


async def test_stuck_kafka_fails_within_the_deadline_and_recovers(
    proxied_kafka: tuple[TcpProxy, str],
) -> None:
    proxy, bootstrap = proxied_kafka
    topic = await new_topic(bootstrap)
    settings = Settings(kafka={"bootstrap_servers": [bootstrap], "enable_idempotence": False})
    destination = Destination.parse(f"kafka:{topic}")
    async with Publisher(settings, timeout=1.5) as publisher:
        await publisher.publish(destination, b"before", key="k")
        proxy.frozen.set()
        started = time.monotonic()
        with pytest.raises(PublishError, match="no acknowledgement within"):
            await publisher.publish(destination, b"stuck", key="k")
        assert time.monotonic() - started < 3
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
    values = [r.value for r in await consume_kafka(bootstrap, topic, 2, linger=0.5)]
    # The timed-out record may still arrive (aiokafka retries it): at-least-once, as documented.
    assert values[0] == b"before" and b"after" in values

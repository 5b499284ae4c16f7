"""A Kafka broker that stops answering: publishes fail within the deadline, then recover.

Tansu advertises the proxy's port, so every producer connection (bootstrap and partition
leader) runs through a proxy that can stop forwarding bytes: a stuck network, where aiokafka's
`send_and_wait()` would otherwise wait "apparently forever" (aiokafka #1101).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import pytest

from gateway.devserver.brokers import BrokerError, Tansu, free_port, wait_for_port
from gateway.errors import PublishError
from gateway.plan import Destination
from gateway.settings import Settings
from gateway.sinks import Publisher
from tests.messaging import consume_kafka, new_topic
from tests.proxy import TcpProxy

pytestmark = pytest.mark.brokers


class ProxiedTansu(Tansu):
    """Tansu listening on its own port but advertising another (the proxy's)."""

    def __init__(self, advertised_port: int) -> None:
        super().__init__()
        self.advertised_port = advertised_port

    def start(self) -> None:
        argv = [self.binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{self.port}"]
        argv += ["--advertised-listener-url", f"tcp://127.0.0.1:{self.advertised_port}"]
        argv += ["--storage-engine", "memory://tansu/"]
        self._spawn(argv, env={**os.environ, "RUST_LOG": "warn"})
        assert self.process is not None
        if not wait_for_port(self.port, time.monotonic() + 15, self.process):
            self.stop()
            raise BrokerError("proxied Tansu did not start")


@pytest.fixture
async def proxied_kafka() -> AsyncIterator[tuple[TcpProxy, str]]:
    broker_port = free_port()
    async with TcpProxy("127.0.0.1", broker_port) as proxy:
        broker = ProxiedTansu(advertised_port=proxy.port)
        broker.port = broker_port
        broker.start()
        try:
            yield proxy, f"127.0.0.1:{proxy.port}"
        finally:
            broker.stop()


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

"""Faults inside the sources: vanished or foreign retry queues, closed channels, messages that
break admission, a consumer that stops by itself, a Kafka outage at shutdown, second signals."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import httpx
import pytest
from aio_pika.exceptions import ChannelClosed, ChannelNotFoundEntity, ChannelPreconditionFailed

from gateway.app import Gateway
from gateway.conductor.client import ConductorClient
from gateway.devserver.brokers import free_port
from gateway.devserver.server import DevServer
from gateway.errors import Abandoned
from gateway.metrics import Metrics
from gateway.pipeline import Job
from gateway.rules.loader import parse_rules
from gateway.settings import Settings
from gateway.sources import kafka as kafka_source
from gateway.sources.amqp import AmqpDelivery, AmqpSource, retry_queue_name, to_event
from gateway.sources.base import Delivery, SourceUnavailable
from tests.daemon.conftest import (
    committed_and_end,
    create_topic,
    eventually,
    make_settings,
    producer,
    read_topic,
    running,
    unique,
    wait_workflow,
    workflows_of,
)
from tests.daemon.test_shutdown import black_hole, gateway_daemon, wait_for_line, wait_in_flight
from tests.messaging import declare_queue, get_amqp, queue_depth
from tests.proxy import TcpProxy, proxied_tansu

pytestmark = pytest.mark.brokers

__all__ = ["black_hole"]  # a fixture, used by the signal tests below

RETRY_TIER_MS = 250  # every backoff below is at most 0.2 s: one retry queue, the 250 ms tier


def signal_rules(queue: str, exchange: str, workflow: str) -> str:
    """Signal the workflow with the event's correlation id; retry while it does not exist."""
    return f"""
version: 1
rules:
  - name: payment-received
    source: {{queue: {queue}, exchange: {exchange}, routing_key: "payment.*"}}
    retry: {{initial_backoff: 0.1, max_backoff: 0.2, max_attempts: 1000}}
    signal:
      workflow_name: {workflow}
      correlation_id: "${{body.order_id}}"
      status: COMPLETED
      on_missing: retry
      retry_for_seconds: 300
"""


def start_rules(topic: str, workflow: str, dlq: str) -> str:
    return f"""
version: 1
defaults:
  dead_letter: kafka:{dlq}
rules:
  - name: start-order
    source: {{topic: {topic}}}
    start_workflow:
      name: {workflow}
      correlation_id: "${{body.id}}"
"""


async def publish(url: str, exchange: str, body: dict[str, Any], message_id: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        ex = await channel.get_exchange(exchange)
        message = aio_pika.Message(json.dumps(body).encode(), message_id=message_id)
        await ex.publish(message, routing_key="payment.card", mandatory=True)


async def delete_when_empty(url: str, queue: str, timeout: float = 30) -> None:
    """Delete `queue` at a moment it holds no message (deleting it would drop the message)."""
    connection = await aio_pika.connect(url)
    async with connection, asyncio.timeout(timeout):
        while True:
            channel = await connection.channel()
            try:
                await channel.queue_delete(queue, if_empty=True)
                return
            except (ChannelPreconditionFailed, ChannelClosed):
                await asyncio.sleep(0.01)  # a retry copy is waiting in it: try again


async def queue_exists(url: str, queue: str) -> bool:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        try:
            await channel.declare_queue(queue, passive=True)
        except ChannelNotFoundEntity:
            return False
    return True


async def signalled(conductor: ConductorClient, workflow: str, correlation_id: str) -> None:
    """Start the workflow the retried signal waits for; wait until the signal completed it."""
    workflow_id = await conductor.start_workflow(workflow, correlation_id=correlation_id)

    async def completed() -> bool:
        return (await conductor.get_workflow(workflow_id)).status == "COMPLETED"

    await eventually(completed, timeout=30)


def failing_admit(gateway: Gateway, marker: bytes) -> Callable[[Delivery], Job]:
    """The pipeline's admit, raising an unexpected error for messages containing `marker`
    (an injected fault: a bug in routing must not stop the source or lose the message)."""
    assert gateway.pipeline is not None
    admit = gateway.pipeline.admit

    def flaky(delivery: Delivery) -> Job:
        if marker in delivery.event.raw:
            raise ZeroDivisionError("injected routing bug")
        return admit(delivery)

    return flaky


# -- AMQP ------------------------------------------------------------------------------------


async def test_a_deleted_retry_queue_is_declared_again_and_the_message_is_not_lost(
    amqp_url: str, devserver: DevServer, conductor: ConductorClient, tmp_path: Path
) -> None:
    queue, exchange, workflow = unique("payments"), unique("events"), unique("order_flow")
    await conductor.register_workflow_def(wait_workflow(workflow))
    settings = make_settings(tmp_path, conductor_url=devserver.url, amqp_url=amqp_url)
    retry_queue = retry_queue_name(queue, RETRY_TIER_MS)
    async with running(settings, signal_rules(queue, exchange, workflow)) as gateway:

        async def retried(count: float) -> bool:
            return gateway.metrics.total("gateway_retries_total") >= count

        # A first message makes the gateway declare (and remember) the retry queue.
        await publish(amqp_url, exchange, {"order_id": "o-0"}, "m-0")
        await eventually(lambda: retried(2), timeout=30)
        await signalled(conductor, workflow, "o-0")
        # Now nothing is in it or on the way to it: delete it, as an operator might.
        await delete_when_empty(amqp_url, retry_queue)
        before = gateway.metrics.total("gateway_retries_total")
        await publish(amqp_url, exchange, {"order_id": "o-1"}, "m-1")
        # Its first copy finds no queue: it must cycle through a declared-again one.
        await eventually(lambda: retried(before + 3), timeout=30)
        assert await queue_exists(amqp_url, retry_queue)
        await signalled(conductor, workflow, "o-1")


async def test_an_existing_retry_queue_with_other_arguments_is_used_as_it_is(
    amqp_url: str, devserver: DevServer, conductor: ConductorClient, tmp_path: Path
) -> None:
    queue, exchange, workflow = unique("payments"), unique("events"), unique("order_flow")
    await conductor.register_workflow_def(wait_workflow(workflow))
    retry_queue = retry_queue_name(queue, RETRY_TIER_MS)
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(
            retry_queue,
            durable=True,
            arguments={  # what an operator may have added: a length cap the gateway never sets
                "x-message-ttl": RETRY_TIER_MS,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": queue,
                "x-max-length": 10_000,
            },
        )
    settings = make_settings(tmp_path, conductor_url=devserver.url, amqp_url=amqp_url)
    async with running(settings, signal_rules(queue, exchange, workflow)) as gateway:
        assert gateway.amqp is not None
        consuming = await gateway.amqp.consumer_channel(queue).get_underlay_channel()
        await publish(amqp_url, exchange, {"order_id": "o-2"}, "m-2")

        async def retried() -> bool:
            return gateway.metrics.total("gateway_retries_total") >= 3

        await eventually(retried, timeout=30)
        await signalled(conductor, workflow, "o-2")
        # Declaring the queue with other arguments would have closed the consuming channel.
        assert await gateway.amqp.consumer_channel(queue).get_underlay_channel() is consuming
        assert not consuming.is_closed


async def test_a_delivery_whose_channel_closed_is_neither_acked_nor_copied(
    amqp_url: str, tmp_path: Path
) -> None:
    queue = await declare_queue(amqp_url, unique("orders"))
    settings = Settings(amqp={"url": amqp_url}, store={"sqlite_path": tmp_path / "gw.db"})
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.default_exchange.publish(
            aio_pika.Message(b'{"id": 1}', message_id="m-3"), routing_key=queue
        )
        q = await channel.declare_queue(queue, passive=True)
        message = None
        async with asyncio.timeout(10):
            while message is None:
                message = await q.get(no_ack=False, fail=False)
        await channel.close()  # the broker takes the message back and redelivers it
        event, error = to_event(message, queue, settings.limits)
        pipeline: Any = None  # never reached: an orphaned delivery touches no pipeline
        source = AmqpSource(settings.amqp, [], pipeline, limits=settings.limits, metrics=Metrics())
        async with source:
            delivery = AmqpDelivery(source, message, event, error)
            with pytest.raises(Abandoned):
                await delivery.defer(0.1, 1)
            with pytest.raises(Abandoned):
                await delivery.ack()
    assert not await queue_exists(amqp_url, retry_queue_name(queue, RETRY_TIER_MS))
    assert await queue_depth(amqp_url, queue) == 1  # one copy, the broker's redelivery


async def test_an_amqp_message_that_breaks_routing_is_dead_lettered_and_the_queue_flows(
    amqp_url: str,
    devserver: DevServer,
    conductor: ConductorClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queue, exchange, workflow = unique("payments"), unique("events"), unique("order_flow")
    await conductor.register_workflow_def(wait_workflow(workflow))
    workflow_id = await conductor.start_workflow(workflow, correlation_id="o-4")
    settings = make_settings(tmp_path, conductor_url=devserver.url, amqp_url=amqp_url)
    async with running(settings, signal_rules(queue, exchange, workflow)) as gateway:
        assert gateway.pipeline is not None
        monkeypatch.setattr(gateway.pipeline, "admit", failing_admit(gateway, b"boom"))
        await publish(amqp_url, exchange, {"order_id": "boom"}, "m-boom")
        await publish(amqp_url, exchange, {"order_id": "o-4"}, "m-4")
        [dead] = await get_amqp(amqp_url, f"{queue}.dlq", 1, timeout=30)

        async def completed() -> bool:
            return (await conductor.get_workflow(workflow_id)).status == "COMPLETED"

        await eventually(completed, timeout=30)
        assert await queue_depth(amqp_url, queue) == 0  # both acked: no slot held
    assert json.loads(dead.body) == {"order_id": "boom"}
    headers = {k: str(v.decode() if isinstance(v, bytes) else v) for k, v in dead.headers.items()}
    assert "injected routing bug" in headers["x-gateway-error-reason"]


# -- Kafka -----------------------------------------------------------------------------------


async def test_a_kafka_record_that_breaks_routing_is_dead_lettered_and_the_partition_flows(
    kafka_bootstrap: str,
    devserver: DevServer,
    conductor: ConductorClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic, workflow, dlq = unique("orders"), unique("order_flow"), unique("orders-dlq")
    await conductor.register_workflow_def(wait_workflow(workflow))
    await create_topic(kafka_bootstrap, topic, 1)
    await create_topic(kafka_bootstrap, dlq, 1)
    port = free_port()
    settings = make_settings(
        tmp_path, conductor_url=devserver.url, kafka_bootstrap=kafka_bootstrap, admin={"port": port}
    )
    bodies = [b'{"id": "good-1"}', b'{"id": "boom"}', b'{"id": "good-2"}']
    async with running(settings, start_rules(topic, workflow, dlq)) as gateway:
        assert gateway.pipeline is not None
        monkeypatch.setattr(gateway.pipeline, "admit", failing_admit(gateway, b"boom"))
        async with producer(kafka_bootstrap) as p:
            for body in bodies:
                await p.send_and_wait(topic, body, key=b"k")
        [dead] = await read_topic(kafka_bootstrap, dlq, 1, timeout=60)

        async def all_committed() -> bool:
            committed, end = await committed_and_end(
                kafka_bootstrap, settings.kafka.group_id, topic, 1
            )
            return committed == end == {0: 3}

        await eventually(all_committed, timeout=30)
        assert gateway.admin is not None and gateway.admin.port == port
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            health = await http.get("/healthz")
            metrics = (await http.get("/metrics")).text
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "dead_letters_blocked": 0}
    assert "gateway_dead_letter_blocked 0" in metrics.splitlines()
    started = sorted(w.correlation_id for w in await workflows_of(conductor, workflow))
    assert started == ["good-1", "good-2"]
    assert dead.value == b'{"id": "boom"}'
    assert b"injected routing bug" in dict(dead.headers)["x-gateway-error-reason"]


async def test_a_kafka_consumer_that_stops_by_itself_ends_serve_with_an_error(
    kafka_bootstrap: str, devserver: DevServer, tmp_path: Path
) -> None:
    topic = unique("orders")
    await create_topic(kafka_bootstrap, topic, 1)
    settings = make_settings(tmp_path, conductor_url=devserver.url, kafka_bootstrap=kafka_bootstrap)
    rules = start_rules(topic, unique("flow"), unique("dlq"))
    async with Gateway(settings, ruleset=parse_rules(rules)) as gateway:
        serving = asyncio.create_task(gateway.serve())
        assert gateway.kafka is not None
        kafka = gateway.kafka

        async def assigned() -> bool:
            return bool(kafka.consumer.assignment())

        await eventually(assigned, timeout=30)
        await kafka.consumer.stop()  # the fault: aiokafka's consumer ends under the gateway
        with pytest.raises(SourceUnavailable, match="stopped by itself"):
            await asyncio.wait_for(serving, 30)


@pytest.fixture
async def proxied_kafka() -> AsyncIterator[tuple[TcpProxy, str]]:
    """Tansu reachable only through a proxy (it advertises the proxy's port)."""
    async with proxied_tansu() as proxy_and_bootstrap:
        yield proxy_and_bootstrap


async def test_stop_during_a_kafka_outage_ends_within_a_bound_and_readiness_drops(
    proxied_kafka: tuple[TcpProxy, str],
    devserver: DevServer,
    conductor: ConductorClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy, bootstrap = proxied_kafka
    monkeypatch.setattr(kafka_source, "FETCH_STALE_SECONDS", 3.0)
    topic, workflow = unique("orders"), unique("order_flow")
    await conductor.register_workflow_def(wait_workflow(workflow))
    await create_topic(bootstrap, topic, 1)
    settings = make_settings(
        tmp_path, conductor_url=devserver.url, kafka_bootstrap=bootstrap, shutdown_grace_seconds=5
    )
    rules = start_rules(topic, workflow, unique("dlq"))
    gateway = Gateway(settings, ruleset=parse_rules(rules))
    await gateway.__aenter__()
    try:
        serving = asyncio.create_task(gateway.serve())
        async with producer(bootstrap) as p:
            for i in range(3):
                await p.send_and_wait(topic, json.dumps({"id": f"e{i}"}).encode())

        async def started() -> bool:
            return len(await workflows_of(conductor, workflow)) == 3

        await eventually(started, timeout=60)
        assert gateway.kafka is not None and gateway.kafka.connected
        await proxy.cut()  # Kafka is gone: fetches, commits and the group leave cannot finish
        kafka = gateway.kafka

        async def disconnected() -> bool:
            return not kafka.connected

        await eventually(disconnected, timeout=20)
        began = time.monotonic()
        gateway.request_stop()
        await asyncio.wait_for(serving, 60)
    finally:
        await asyncio.wait_for(gateway.__aexit__(None, None, None), 60)
    took = time.monotonic() - began
    # 5 s grace + 5 s commit deadline + 10 s stop deadline, with room for a slow machine
    assert took < 40, f"stopping during the outage took {took:.1f}s"


# -- signals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
async def test_a_second_signal_exits_with_128_plus_its_number(
    kafka_bootstrap: str, black_hole: int, tmp_path: Path, signum: int, code: int
) -> None:
    async with gateway_daemon(tmp_path, kafka_bootstrap, black_hole, grace=60) as daemon:
        await wait_in_flight(daemon, 5, 60)
        daemon.process.send_signal(signum)
        await wait_for_line(daemon, "draining", 30)
        daemon.process.send_signal(signum)
        exit_code = await asyncio.wait_for(daemon.process.wait(), 30)
    assert exit_code == code


async def test_work_of_a_closed_channel_is_cancelled_and_only_the_redelivery_runs(
    amqp_url: str, devserver: DevServer, conductor: ConductorClient, tmp_path: Path
) -> None:
    queue, exchange, workflow = unique("payments"), unique("events"), unique("order_flow")
    await conductor.register_workflow_def(wait_workflow(workflow))
    await conductor.start_workflow(workflow, correlation_id="o-5")
    broker = urlsplit(amqp_url)
    async with (
        TcpProxy("127.0.0.1", devserver.port) as conductor_proxy,
        TcpProxy(broker.hostname or "", broker.port or 5672) as amqp_proxy,
    ):
        settings = make_settings(
            tmp_path,
            conductor_url=f"http://127.0.0.1:{conductor_proxy.port}/api",
            amqp_url=f"amqp://guest:guest@127.0.0.1:{amqp_proxy.port}/",
            amqp={"reconnect_interval": 0.5},
        )
        async with running(settings, signal_rules(queue, exchange, workflow)) as gateway:
            pipeline = gateway.pipeline
            assert pipeline is not None
            conductor_proxy.frozen.set()  # Conductor stops answering: the signal hangs
            await publish(amqp_url, exchange, {"order_id": "o-5"}, "m-5")

            async def in_flight(count: int) -> bool:
                return pipeline.in_flight == count

            await eventually(lambda: in_flight(1), timeout=30)
            await amqp_proxy.cut()  # the consuming channel closes: RabbitMQ takes m-5 back
            await eventually(lambda: in_flight(0), timeout=10)
            await amqp_proxy.restore()
            received = gateway.metrics.total("gateway_events_received_total")

            async def redelivered() -> bool:
                return gateway.metrics.total("gateway_events_received_total") > received

            await eventually(redelivered, timeout=30)
            await asyncio.sleep(1)
            assert pipeline.in_flight == 1  # the redelivery only, not beside the old attempt
            conductor_proxy.frozen.clear()

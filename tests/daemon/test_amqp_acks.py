"""Batched AMQP acks on real RabbitMQ: two queues, each consumed on its own channel, every
message starts exactly one workflow and is acked (none left or requeued when the gateway has
stopped)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aio_pika
import pytest

from gateway.conductor.client import ConductorClient
from gateway.devserver.server import DevServer
from tests.daemon.conftest import (
    eventually,
    make_settings,
    running,
    unique,
    wait_workflow,
    workflows_of,
)
from tests.messaging import declare_queue, queue_depth

pytestmark = pytest.mark.brokers

PER_QUEUE = 300


async def fill(url: str, queue: str, prefix: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await asyncio.gather(
            *(
                channel.default_exchange.publish(
                    aio_pika.Message(
                        json.dumps({"id": f"{prefix}-{n}"}).encode(),
                        message_id=f"{prefix}-{n}",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=queue,
                )
                for n in range(PER_QUEUE)
            )
        )


async def test_every_message_of_two_queues_starts_one_workflow_and_is_acked(
    amqp_url: str, devserver: DevServer, conductor: ConductorClient, tmp_path: Path
) -> None:
    workflow = unique("order_flow")
    await conductor.register_workflow_def(wait_workflow(workflow))
    queues = [await declare_queue(amqp_url, unique("orders")) for _ in range(2)]
    rules = "version: 1\nrules:\n" + "".join(
        f"""  - name: start-{n}
    source: {{queue: {queue}}}
    start_workflow: {{name: {workflow}, correlation_id: "${{body.id}}"}}
"""
        for n, queue in enumerate(queues)
    )
    settings = make_settings(
        tmp_path, conductor_url=devserver.url, amqp_url=amqp_url, amqp={"prefetch": 20}
    )
    async with running(settings, rules) as gateway:
        assert gateway.amqp is not None
        first, second = (gateway.amqp.consumer_channel(q) for q in queues)
        assert first is not second  # one channel (one prefetch window) per consumer
        await asyncio.gather(*(fill(amqp_url, q, q) for q in queues))

        async def all_started() -> bool:
            return len(await workflows_of(conductor, workflow)) >= 2 * PER_QUEUE

        await eventually(all_started, timeout=90)
    # Stopped: the channels are closed, so what was not acked would be ready again.
    assert [await queue_depth(amqp_url, q) for q in queues] == [0, 0]
    started = await workflows_of(conductor, workflow)
    ids = sorted(w.correlation_id or "" for w in started)
    assert ids == sorted(f"{q}-{n}" for q in queues for n in range(PER_QUEUE))  # one each

"""A start rule with both `completion:` and a deferred `reply:` publishes both (issue 19)."""

from __future__ import annotations

import json
from pathlib import Path

import aio_pika
import pytest

from gateway.conductor.client import ConductorClient
from gateway.devserver.server import DevServer
from tests.daemon.conftest import eventually, make_settings, running, unique

pytestmark = pytest.mark.brokers


async def test_the_requester_and_the_completion_queue_both_hear_of_the_end(
    amqp_url: str, devserver: DevServer, conductor: ConductorClient, tmp_path: Path
) -> None:
    queue, status_queue, workflow = unique("orders"), unique("order-status"), unique("order")
    await conductor.register_workflow_def(
        {
            "name": workflow,
            "version": 1,
            "tasks": [
                {
                    "name": "set",
                    "taskReferenceName": "set",
                    "type": "SET_VARIABLE",
                    "inputParameters": {"qty": "${workflow.input.qty}"},
                }
            ],
            "outputParameters": {"qty": "${workflow.variables.qty}"},
        }
    )
    rules = f"""
version: 1
rules:
  - name: orders
    source: {{queue: {queue}}}
    start_workflow: {{name: {workflow}, input: {{qty: "${{body.qty}}"}}}}
    completion: {{destination: "amqp:{status_queue}"}}
    reply: {{wait_for_completion: true}}
"""
    settings = make_settings(
        tmp_path, conductor_url=devserver.url, amqp_url=amqp_url, tracker={"min_interval": 0.1}
    )
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        statuses = await channel.declare_queue(status_queue, durable=True)
        replies = await channel.declare_queue(exclusive=True)
        got: dict[str, list[aio_pika.abc.AbstractIncomingMessage]] = {"reply": [], "status": []}

        async def both_arrived() -> bool:
            for name, source in (("reply", replies), ("status", statuses)):
                if (message := await source.get(no_ack=True, fail=False)) is not None:
                    got[name].append(message)
            return bool(got["reply"] and got["status"])

        async with running(settings, rules):
            request = aio_pika.Message(
                b'{"qty": 3}', message_id="o-1", correlation_id="req-1", reply_to=replies.name
            )
            await channel.default_exchange.publish(request, routing_key=queue)
            await eventually(both_arrived, timeout=30)
    [reply], [status] = got["reply"], got["status"]
    assert reply.correlation_id == "req-1"
    answer, completion = json.loads(reply.body), json.loads(status.body)
    assert answer["type"] == completion["type"] == "io.conductor.workflow.completed"
    assert answer["id"] == completion["id"]  # one event, two destinations
    assert completion["data"]["output"] == {"qty": 3}

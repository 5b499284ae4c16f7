"""Request/reply on Kafka (issue 19): a request record names its reply topic and correlation id
in headers (Spring's `kafka_replyTopic` / `kafka_correlationId`); the answer arrives on that
topic with the same correlation id. Checked by a plain aiokafka client on Tansu."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.conductor.client import ConductorClient
from gateway.devserver.server import DevServer
from gateway.settings import Settings
from tests.daemon.conftest import (
    create_topic,
    eventually,
    make_settings,
    producer,
    read_topic,
    running,
    unique,
    workflows_of,
)

pytestmark = pytest.mark.brokers

TASK = "kafka_reply_task"


def quote_workflow(name: str) -> dict[str, Any]:
    """Ends at once: the price is the quantity."""
    return {
        "name": name,
        "version": 1,
        "tasks": [
            {
                "name": "set",
                "taskReferenceName": "set",
                "type": "SET_VARIABLE",
                "inputParameters": {"price": "${workflow.input.qty}"},
            }
        ],
        "outputParameters": {"price": "${workflow.variables.price}"},
    }


def order_workflow(name: str) -> dict[str, Any]:
    """Waits for a worker: the answer can only come after the gateway restarted."""
    return {
        "name": name,
        "version": 1,
        "tasks": [{"name": TASK, "taskReferenceName": "ship", "type": "SIMPLE"}],
        "outputParameters": {"shipment": "${ship.output.shipment}"},
    }


async def request(bootstrap: str, topic: str, replies: str, correlation: str) -> None:
    async with producer(bootstrap) as p:
        headers = [
            ("kafka_replyTopic", replies.encode()),
            ("kafka_correlationId", correlation.encode()),
        ]
        await p.send_and_wait(topic, b'{"qty": 4}', headers=headers)


def answer_of(record: Any) -> tuple[str, dict[str, Any]]:
    """(correlation id header, CloudEvent) of a reply record."""
    headers = {name: value.decode() for name, value in record.headers}
    return headers["kafka_correlationId"], json.loads(record.value)


async def topics(bootstrap: str, *names: str) -> None:
    for name in names:
        await create_topic(bootstrap, name, 1)


def settings_of(tmp_path: Path, devserver: DevServer, bootstrap: str) -> Settings:
    return make_settings(
        tmp_path,
        conductor_url=devserver.url,
        kafka_bootstrap=bootstrap,
        tracker={"min_interval": 0.1, "max_interval": 0.5},
    )


async def test_execute_answers_on_the_reply_topic_with_the_correlation_id(
    kafka_bootstrap: str, devserver: DevServer, conductor: ConductorClient, tmp_path: Path
) -> None:
    requests, replies, workflow = unique("quotes"), unique("quote-replies"), unique("quote")
    await topics(kafka_bootstrap, requests, replies)
    await conductor.register_workflow_def(quote_workflow(workflow))
    rules = f"""
version: 1
rules:
  - name: quote
    source: {{topic: {requests}}}
    execute_workflow: {{name: {workflow}, input: {{qty: "${{body.qty}}"}}}}
    reply: {{}}
"""
    async with running(settings_of(tmp_path, devserver, kafka_bootstrap), rules):
        await request(kafka_bootstrap, requests, replies, "req-7")
        [record] = await read_topic(kafka_bootstrap, replies, 1)
    correlation, answer = answer_of(record)
    assert correlation == "req-7"
    assert answer["type"] == "io.conductor.workflow.completed"
    assert answer["data"]["output"] == {"price": 4}


async def test_a_deferred_reply_survives_a_gateway_restart(
    kafka_bootstrap: str, devserver: DevServer, conductor: ConductorClient, tmp_path: Path
) -> None:
    requests, replies, workflow = unique("orders"), unique("order-replies"), unique("order")
    await topics(kafka_bootstrap, requests, replies)
    await conductor.register_task_defs([{"name": TASK, "ownerEmail": "tests@example.com"}])
    await conductor.register_workflow_def(order_workflow(workflow))
    rules = f"""
version: 1
rules:
  - name: order
    source: {{topic: {requests}}}
    start_workflow: {{name: {workflow}, input: {{qty: "${{body.qty}}"}}}}
    reply: {{wait_for_completion: true}}
"""
    settings = settings_of(tmp_path, devserver, kafka_bootstrap)
    async with running(settings, rules):
        await request(kafka_bootstrap, requests, replies, "req-8")

        async def started() -> bool:
            return bool(await workflows_of(conductor, workflow))

        await eventually(started)
    # The gateway is down while the workflow ends.
    [wf] = [w.workflow_id for w in await workflows_of(conductor, workflow)]
    async with asyncio.timeout(10):
        while (task := await conductor.poll_task(TASK, worker_id="w")) is None:
            await asyncio.sleep(0.05)
    await conductor.update_task(task.task_id, wf, "COMPLETED", {"shipment": "S-1"})
    async with running(settings, rules):  # the same store: the outbox row is still there
        [record] = await read_topic(kafka_bootstrap, replies, 1)
    correlation, answer = answer_of(record)
    assert correlation == "req-8"
    assert answer["subject"] == wf
    assert answer["type"] == "io.conductor.workflow.completed"
    assert answer["data"]["output"] == {"shipment": "S-1"}

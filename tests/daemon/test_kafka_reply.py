"""Request/reply on Kafka (issue 19): a request record names its reply topic and correlation id
in headers (Spring's `kafka_replyTopic` / `kafka_correlationId`); the answer arrives on that
topic with the same correlation id, text or the raw bytes Spring's ReplyingKafkaTemplate sends,
from an execute at once or from a start when its workflow ends, across a restart of `gateway
run`. Checked by a plain aiokafka client on Tansu."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
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
from tests.daemon.process import gateway_run

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


async def request(bootstrap: str, topic: str, replies: str, correlation: bytes) -> None:
    async with producer(bootstrap) as p:
        headers = [("kafka_replyTopic", replies.encode()), ("kafka_correlationId", correlation)]
        await p.send_and_wait(topic, b'{"qty": 4}', headers=headers)


def answer_of(record: Any) -> tuple[bytes, dict[str, Any]]:
    """(correlation id header bytes, CloudEvent) of a reply record."""
    headers = dict(record.headers)
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


@pytest.mark.parametrize(
    "correlation",
    [b"req-7", uuid.UUID("8f14e45f-ceea-467f-a0a6-1d2f3b4c5d6e").bytes, b"base64:not-binary"],
    ids=["text", "spring-binary-uuid", "text-with-the-mark"],
)
async def test_execute_answers_on_the_reply_topic_with_the_correlation_id(
    kafka_bootstrap: str,
    devserver: DevServer,
    conductor: ConductorClient,
    tmp_path: Path,
    correlation: bytes,
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
        await request(kafka_bootstrap, requests, replies, correlation)
        [record] = await read_topic(kafka_bootstrap, replies, 1)
    answered, answer = answer_of(record)
    assert answered == correlation  # byte for byte
    assert answer["type"] == "io.conductor.workflow.completed"
    assert answer["data"]["output"] == {"price": 4}


async def test_a_deferred_reply_survives_a_restart_of_gateway_run(
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
    config = {
        "kafka": {
            "bootstrap_servers": kafka_bootstrap,
            "group_id": unique("gw"),
            "enable_idempotence": False,  # Tansu has no InitProducerId
        },
        "conductor": {"url": devserver.url, "flavor": "oss"},
        "tracker": {"min_interval": 0.1, "max_interval": 0.5},
    }
    async with gateway_run(tmp_path, rules, config) as gateway:  # gw.db: the store
        await gateway.wait_ready(60)
        await request(kafka_bootstrap, requests, replies, b"req-8")

        async def started() -> bool:
            return bool(await workflows_of(conductor, workflow))

        await eventually(started)
        assert await gateway.stop(signal.SIGTERM) == 0
    # The gateway is down while the workflow ends.
    [wf] = [w.workflow_id for w in await workflows_of(conductor, workflow)]
    async with asyncio.timeout(10):
        while (task := await conductor.poll_task(TASK, worker_id="w")) is None:
            await asyncio.sleep(0.05)
    await conductor.update_task(task.task_id, wf, "COMPLETED", {"shipment": "S-1"})
    async with gateway_run(tmp_path, rules, config) as gateway:  # a new process, same store
        [record] = await read_topic(kafka_bootstrap, replies, 1, timeout=60)
        assert await gateway.stop(signal.SIGTERM) == 0
    correlation, answer = answer_of(record)
    assert correlation == b"req-8"
    assert answer["subject"] == wf
    assert answer["type"] == "io.conductor.workflow.completed"
    assert answer["data"]["output"] == {"shipment": "S-1"}

"""One run through secured servers only: events from SASL_SSL (SCRAM-SHA-512) or mutual-TLS
Apache Kafka and from TLS RabbitMQ (client certificate required) start workflows on a Conductor
that serves https, and their completion events come back through the same brokers; one event per
workflow, one completion per workflow. `gateway dev send` and `gateway dlq replay` go through the
same secured listeners. Passwords come from the environment and appear in no log line."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from gateway.conductor.client import ConductorClient
from gateway.devserver.brokers import RabbitMQ, free_port
from gateway.devserver.realservers import ApacheKafka
from tests.daemon.conftest import eventually, unique, workflows_of
from tests.messaging import consume_kafka, declare_queue, get_amqp, new_topic
from tests.security.conftest import (
    KAFKA_PASSWORD,
    amqp_tls,
    kafka_mtls,
    kafka_sasl,
    no_secret_in,
    run_gateway,
)
from tests.tlsca import Authority

pytestmark = [pytest.mark.brokers, pytest.mark.slow]

KAFKA_EVENTS, AMQP_EVENTS, LATE_EVENTS = 10, 5, 2


def quick_workflow(name: str) -> dict[str, Any]:
    """Completes as soon as it starts."""
    return {
        "name": name,
        "version": 1,
        "tasks": [
            {
                "name": "mark",
                "taskReferenceName": "mark_ref",
                "type": "SET_VARIABLE",
                "inputParameters": {"seen": "${workflow.input.id}"},
            }
        ],
        "timeoutSeconds": 0,
    }


def rules(names: dict[str, str]) -> str:
    return f"""
version: 1
defaults: {{dead_letter: "kafka:{names["dlq"]}"}}
rules:
  - name: from-kafka
    source: {{topic: {names["topic"]}}}
    start_workflow: {{name: {names["flow"]}, input: {{id: "${{body.id}}"}}, correlation_id: "${{body.id}}"}}
    completion: {{destination: "kafka:{names["status"]}"}}
  - name: late
    source: {{topic: {names["late_topic"]}}}
    start_workflow: {{name: {names["late_flow"]}, correlation_id: "${{body.id}}"}}
    completion: {{destination: "kafka:{names["status"]}"}}
  - name: from-amqp
    source: {{queue: {names["queue"]}}}
    start_workflow: {{name: {names["flow"]}, input: {{id: "${{body.id}}"}}, correlation_id: "${{body.id}}"}}
    completion: {{destination: "amqp:{names["status_queue"]}"}}
"""  # noqa: E501


@pytest.mark.parametrize(
    ("listener", "https_conductor"),
    [("sasl_ssl", "dev"), ("mtls", "dev"), ("sasl_ssl", "real")],
    indirect=["https_conductor"],
)
async def test_events_through_secured_brokers_start_workflows_on_https_conductor_and_complete(
    listener: str,
    https_conductor: str,
    secured_kafka: ApacheKafka,
    secured_rabbit: RabbitMQ,
    tls_ca: Authority,
    tmp_path: Path,
) -> None:
    conductor_url = https_conductor
    names = {key: unique(key) for key in ("topic", "late_topic", "dlq", "status", "flow")}
    names |= {key: unique(key) for key in ("late_flow", "queue", "status_queue")}
    plain_kafka, plain_amqp = secured_kafka.bootstrap, secured_rabbit.url  # the tests' own side
    for topic in ("topic", "late_topic", "dlq", "status"):
        names[topic] = await new_topic(plain_kafka)
    await declare_queue(plain_amqp, names["status_queue"])
    (tmp_path / "rules.yaml").write_text(rules(names))
    kafka = kafka_sasl if listener == "sasl_ssl" else kafka_mtls
    admin_port = free_port()
    config = tmp_path / "gateway.yaml"
    config.write_text(
        json.dumps(
            {
                "kafka": kafka(secured_kafka, tls_ca, group_id=unique("gw")),
                "amqp": amqp_tls(tls_ca),
                "conductor": {"url": conductor_url, "flavor": "oss", "ca_file": str(tls_ca.ca)},
                "store": {"sqlite_path": str(tmp_path / "gw.db")},
                "admin": {"port": admin_port},
                "tracker": {"min_interval": 0.1, "max_interval": 0.5},
                "rules_file": str(tmp_path / "rules.yaml"),
                "logging": {"format": "text", "level": "DEBUG"},
            }
        )
    )
    env = {
        **os.environ,
        "GATEWAY_KAFKA__SASL_PASSWORD": KAFKA_PASSWORD,
        "GATEWAY_AMQP__URL": secured_rabbit.tls_url,
    }
    async with ConductorClient(conductor_url, flavor="oss", ca_file=str(tls_ca.ca)) as client:
        await client.register_workflow_def(quick_workflow(names["flow"]))
        run = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "run", "--config", str(config), env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            await ready(admin_port)
            await produce(plain_kafka, names["topic"], KAFKA_EVENTS, "k")
            await produce(plain_kafka, names["late_topic"], LATE_EVENTS, "late")
            await publish_amqp(plain_amqp, names["queue"], AMQP_EVENTS)
            # The CLI publishes through the secured listeners too.
            for destination in (f"kafka:{names['topic']}", f"amqp:{names['queue']}"):
                code, out, err = await run_gateway(
                    "dev", "send", "--config", str(config), destination,
                    json.dumps({"id": f"cli-{destination[:5]}"}), env=env,
                )  # fmt: skip
                assert code == 0 and "sent to" in out, err[-2000:]
            # The late events' workflow is not defined yet: dead-lettered, then replayed.
            await consume_kafka(plain_kafka, names["dlq"], LATE_EVENTS)
            await client.register_workflow_def(quick_workflow(names["late_flow"]))
            code, out, err = await run_gateway(
                "dlq", "replay", "--from", f"kafka:{names['dlq']}", "--rule", "late",
                "--config", str(config), env=env,
            )  # fmt: skip
            assert code == 0 and f"replayed {LATE_EVENTS}" in out, err[-2000:]

            kafka_status = await consume_kafka(
                plain_kafka, names["status"], KAFKA_EVENTS + 1 + LATE_EVENTS, timeout=60, linger=1
            )
            amqp_status = await get_amqp(plain_amqp, names["status_queue"], AMQP_EVENTS + 1, 60)
            expected = KAFKA_EVENTS + 1 + AMQP_EVENTS + 1 + LATE_EVENTS

            async def all_found() -> bool:  # Conductor OSS indexes for search asynchronously
                found = await workflows_of(client, names["flow"])
                return len(found) + len(await workflows_of(client, names["late_flow"])) >= expected

            await eventually(all_found, timeout=30)
            started = await workflows_of(client, names["flow"])
            late = await workflows_of(client, names["late_flow"])
            statuses = [(await client.get_status(w.workflow_id)).status for w in [*started, *late]]
        finally:
            run.terminate()
            logs, _ = await asyncio.wait_for(run.communicate(), 40)
    text = logs.decode()
    assert run.returncode == 0, text[-3000:]
    # One workflow per event, each COMPLETED, one completion event per workflow.
    assert len(started) == KAFKA_EVENTS + 1 + AMQP_EVENTS + 1 and len(late) == LATE_EVENTS
    assert set(statuses) == {"COMPLETED"}
    subjects = [json.loads(r.value)["subject"] for r in kafka_status]
    subjects += [json.loads(m.body)["subject"] for m in amqp_status]
    assert sorted(subjects) == sorted(w.workflow_id for w in [*started, *late])
    no_secret_in(text)
    no_secret_in(out + err)


async def ready(admin_port: int) -> None:
    async with httpx.AsyncClient() as http:

        async def answered() -> bool:
            try:
                response = await http.get(f"http://127.0.0.1:{admin_port}/readyz")
            except httpx.TransportError:
                return False
            return response.status_code == 200

        await eventually(answered, timeout=30)


async def produce(bootstrap: str, topic: str, count: int, prefix: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(count):
            await producer.send_and_wait(topic, json.dumps({"id": f"{prefix}-{i}"}).encode())
    finally:
        await producer.stop()


async def publish_amqp(url: str, queue: str, count: int) -> None:
    import aio_pika

    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for i in range(count):
            message = aio_pika.Message(json.dumps({"id": f"a-{i}"}).encode(), message_id=f"a-{i}")
            await channel.default_exchange.publish(message, routing_key=queue)

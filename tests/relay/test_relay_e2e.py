"""The relay end to end (issue 19): the real Conductor OSS with its Kafka workflow status
listener publishing to Apache Kafka, `gateway run`'s relay republishing the status events of
workflows started directly on Conductor as CloudEvents, read by a plain aiokafka consumer; the
workflows the gateway started itself are left out (their events are the tracker's)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.completion import Trigger, build_event
from gateway.conductor.client import ConductorClient
from gateway.devserver.realservers import ConductorOSS
from tests.daemon.conftest import (
    create_topic,
    eventually,
    make_settings,
    producer,
    read_topic,
    running,
    unique,
)

pytestmark = [pytest.mark.brokers, pytest.mark.slow]

RULES = """
version: 1
rules:
  - name: orders
    source: {topic: %s}
    start_workflow: {name: %s, version: 1, input: {x: "${body.x}"}, correlation_id: "${body.id}"}
"""


@pytest.fixture
async def listening_conductor(apache_kafka_bootstrap: str) -> AsyncIterator[tuple[str, str]]:
    """(API URL, status topic) of a Conductor OSS whose status listener is Kafka."""
    topic = unique("workflow-status-events")
    await create_topic(apache_kafka_bootstrap, topic, 1)
    server = ConductorOSS(
        settings={
            "conductor.workflow-status-listener.type": "kafka",
            "conductor.workflow-status-listener.kafka.producer[bootstrap.servers]": (
                apache_kafka_bootstrap
            ),
            "conductor.workflow-status-listener.kafka.default-topic": topic,
        }
    )
    await asyncio.to_thread(server.start)
    try:
        yield server.url, topic
    finally:
        await asyncio.to_thread(server.stop)


def definition(name: str, task: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "version": 1,
        "schemaVersion": 2,
        "ownerEmail": "tests@example.com",
        "workflowStatusListenerEnabled": True,  # OSS notifies only workflows that opt in
        "tasks": [task],
        "outputParameters": {"x": "${workflow.input.x}"},
    }


SET = {"name": "s", "taskReferenceName": "s", "type": "SET_VARIABLE", "inputParameters": {"v": 1}}
WAIT = {"name": "w", "taskReferenceName": "w", "type": "WAIT"}


async def test_status_events_of_workflows_started_on_conductor_arrive_as_cloudevents(
    listening_conductor: tuple[str, str], apache_kafka_bootstrap: str, tmp_path: Path
) -> None:
    url, status_topic = listening_conductor
    out = unique("workflow-events")
    await create_topic(apache_kafka_bootstrap, out, 1)
    relayed, other = f"relayed_{uuid.uuid4().hex[:6]}", f"other_{uuid.uuid4().hex[:6]}"
    settings = make_settings(
        tmp_path,
        conductor_url=url,
        kafka_bootstrap=apache_kafka_bootstrap,
        idempotence=True,
        relay={
            "topic": status_topic,
            "destination": f"kafka:{out}",
            "workflow_names": [relayed, relayed + "_w"],
        },
    )
    orders = unique("orders")
    await create_topic(apache_kafka_bootstrap, orders, 1)
    async with ConductorClient(url, flavor="oss") as client:
        await client.register_workflow_def(definition(relayed, SET), overwrite=True)
        await client.register_workflow_def(definition(other, SET), overwrite=True)
        await client.register_workflow_def(definition(relayed + "_w", WAIT), overwrite=True)
        async with running(settings, RULES % (orders, relayed + "_w")) as gateway:
            # First a workflow the gateway starts (a listed name): its events are not relayed.
            async with producer(apache_kafka_bootstrap) as p:
                await p.send_and_wait(orders, json.dumps({"id": "o-1", "x": 1}).encode())
            ours = await eventually_started(client, relayed + "_w", "o-1")
            assert gateway.store is not None

            async def recorded() -> bool:
                assert gateway.store is not None
                return await gateway.store.started_workflows([ours]) == {ours}

            await eventually(recorded, timeout=30)
            await client.terminate(ours, reason="cancelled by the test")
            done = await client.start_workflow(relayed, 1, {"x": 7})  # completes at once
            await client.start_workflow(other, 1, {"x": 8})  # not asked for
            waiting = await client.start_workflow(relayed + "_w", 1, {"x": 9})
            await client.terminate(waiting, reason="cancelled")
            records = await read_topic(apache_kafka_bootstrap, out, 2, timeout=60)
        finished = await client.get_workflow(done, include_tasks=False)
    events = [json.loads(r.value) for r in records]
    # Not `other`, no `started`, not the gateway's own (it ended first, on the one partition).
    assert [e["subject"] for e in events] == [done, waiting]
    event = next(e for e in events if e["subject"] == done)
    assert event["type"] == "io.conductor.workflow.completed"
    assert event["source"] == "/conductor-gateway/rules/relay"
    assert event["data"]["output"] == {"x": 7} and event["data"]["workflowType"] == relayed
    # The same id the tracker gives this ending: both paths deduplicate.
    assert event["id"] == build_event(finished, Trigger("r", "e", "s")).id
    stopped = next(e for e in events if e["subject"] == waiting)
    assert stopped["type"] == "io.conductor.workflow.terminated"
    assert "cancelled" in stopped["data"]["reasonForIncompletion"]
    assert {r.key for r in records} == {done.encode(), waiting.encode()}


async def eventually_started(client: ConductorClient, name: str, correlation_id: str) -> str:
    found: list[str] = []

    async def started() -> bool:
        runs = await client.get_by_correlation_id(name, correlation_id)
        found[:] = [r.workflow_id for r in runs]
        return bool(found)

    await eventually(started, timeout=30)
    return found[0]

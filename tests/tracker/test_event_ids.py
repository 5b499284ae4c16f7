"""Completion event ids on the real Conductor OSS: one id per run's end, however often sent.

The tracker publishes to Tansu and a plain aiokafka consumer reads what a user would read.
A redelivery is the outbox row tracked again after its event went out (what a crash between
the broker's confirm and the row's deletion leaves); a second run is Conductor's restart of the
COMPLETED workflow, which then completes again.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.conductor.client import ConductorClient
from gateway.settings import TrackerSettings
from gateway.sinks import Publisher
from gateway.store.base import TrackRequest
from gateway.store.sqlite import SqliteStore
from gateway.tracker import Tracker
from tests.messaging import consume_kafka, new_topic, settings_for

from .conftest import take_task

pytestmark = pytest.mark.brokers

SETTINGS = TrackerSettings(min_interval=0.1, max_interval=0.5)


@pytest.fixture
async def oss(conductor_oss_url: str) -> AsyncIterator[tuple[ConductorClient, str, str]]:
    """A client of the real server and a one-task workflow of its own (unique names)."""
    task, flow = f"ids_task_{uuid.uuid4().hex[:8]}", f"ids_flow_{uuid.uuid4().hex[:8]}"
    async with ConductorClient(conductor_oss_url, flavor="oss") as client:
        await client.register_task_defs(
            [{"name": task, "retryCount": 0, "ownerEmail": "tests@example.com"}]
        )
        await client.register_workflow_def(
            {
                "name": flow,
                "version": 1,
                "schemaVersion": 2,
                "ownerEmail": "tests@example.com",
                "restartable": True,
                "tasks": [{"name": task, "taskReferenceName": "step", "type": "SIMPLE"}],
            },
            overwrite=True,
        )
        yield client, task, flow


async def complete(client: ConductorClient, task: str, workflow_id: str) -> None:
    step = await take_task(client, task, workflow_id)
    await client.update_task(step.task_id, workflow_id, "COMPLETED", {"done": True})
    async with asyncio.timeout(15):
        while (await client.get_workflow(workflow_id, include_tasks=False)).status != "COMPLETED":
            await asyncio.sleep(0.1)


async def publish_completion(tracker: Tracker, store: SqliteStore, wf: str, topic: str) -> None:
    track = TrackRequest(f"kafka:{topic}", frozenset({"COMPLETED"}), "ids", "kafka:in:0:1", "in")
    await store.track(wf, track)
    async with asyncio.timeout(15):
        while await store.pending_count():
            await tracker.run_once()
            await asyncio.sleep(0.05)


async def test_restarted_workflow_completing_again_gets_a_new_id_a_redelivery_does_not(
    oss: tuple[ConductorClient, str, str], kafka_bootstrap: str, tmp_path: Path
) -> None:
    client, task, flow = oss
    topic = await new_topic(kafka_bootstrap)
    wf = await client.start_workflow(flow, 1, {})
    async with (
        SqliteStore(tmp_path / "g.db") as store,
        Publisher(settings_for(kafka_bootstrap, "amqp://unused")) as publisher,
    ):
        tracker = Tracker(store, client, publisher, SETTINGS)
        await complete(client, task, wf)
        await publish_completion(tracker, store, wf, topic)
        await publish_completion(tracker, store, wf, topic)  # the same end, sent again
        await client.restart(wf)
        await complete(client, task, wf)
        await publish_completion(tracker, store, wf, topic)
    records = await consume_kafka(kafka_bootstrap, topic, 3, linger=0.5)
    documents = [json.loads(record.value) for record in records]
    ids = [document["id"] for document in documents]
    assert len(ids) == 3, ids
    assert ids[0] == ids[1], "a redelivered completion must keep its id"
    assert ids[2] != ids[0], "the restarted run's completion must get a new id"
    first_end, second_end = documents[0]["data"]["endTime"], documents[2]["data"]["endTime"]
    assert ids == [f"{wf}:COMPLETED:{first_end}"] * 2 + [f"{wf}:COMPLETED:{second_end}"]

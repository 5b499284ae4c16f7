"""The tracker end to end: dev server over HTTP, real brokers, events read by plain consumers."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.completion import Mode
from gateway.conductor.client import ConductorClient
from gateway.settings import TrackerSettings
from gateway.sinks import Publisher
from gateway.store.base import TrackRequest
from gateway.store.sqlite import SqliteStore
from gateway.tracker import Tracker
from tests.messaging import (
    consume_kafka,
    declare_queue,
    get_amqp,
    new_topic,
    queue_depth,
    settings_for,
)

from .conftest import FLOW, SLOW_TASK, TASK, TIMEOUT_FLOW, take_task

pytestmark = pytest.mark.brokers

FAST = TrackerSettings(min_interval=0.1, max_interval=0.5, concurrency=8, batch_size=100)
ALL = frozenset({"COMPLETED", "FAILED", "TIMED_OUT", "TERMINATED"})


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "g.db", first_poll_delay=0.0) as s:
        yield s


def track(destination: str, rule: str = "e2e", reply: str | None = None) -> TrackRequest:
    return TrackRequest(destination, ALL, rule, "kafka:in:0:5", "kafka:in", reply)


async def one_of_each(client: ConductorClient) -> dict[str, str]:
    """Drive four workflows to COMPLETED, FAILED, TIMED_OUT and TERMINATED; status -> id."""
    done = await client.start_workflow(FLOW, 1, {"n": 1}, correlation_id="c-done")
    task = await take_task(client, TASK, done)
    await client.update_task(task.task_id, done, "COMPLETED", {"answer": 42})

    failed = await client.start_workflow(FLOW, 1, {"n": 2}, correlation_id="c-failed")
    task = await take_task(client, TASK, failed)
    await client.update_task(task.task_id, failed, "FAILED", {}, reason_for_incompletion="boom")

    timed_out = await client.start_workflow(TIMEOUT_FLOW, 1, {"n": 3})
    await take_task(client, SLOW_TASK, timed_out)  # taken, never answered: times out

    terminated = await client.start_workflow(FLOW, 1, {"n": 4})
    await client.terminate(terminated, reason="stop it")
    return {"COMPLETED": done, "FAILED": failed, "TIMED_OUT": timed_out, "TERMINATED": terminated}


def check_event(attributes: dict[str, Any], data: dict[str, Any], status: str, wf: str) -> None:
    assert attributes == {
        "specversion": "1.0",
        "id": f"{wf}:{status}:{data['endTime']}",  # one id per ending of the workflow
        "source": "/conductor-gateway/rules/e2e",
        "type": f"io.conductor.workflow.{status.lower()}",
        "subject": wf,
        "time": attributes["time"],
        "datacontenttype": "application/json",
    }
    assert attributes["time"].endswith("Z") and attributes["time"][:2] == "20"
    assert data["workflowId"] == wf and data["status"] == status
    assert data["workflowType"] in (FLOW, TIMEOUT_FLOW) and data["version"] == 1
    assert data["rule"] == "e2e" and data["triggerEventId"] == "kafka:in:0:5"
    assert data["triggerSource"] == "kafka:in"
    assert isinstance(data["startTime"], int) and isinstance(data["endTime"], int)
    if status == "COMPLETED":
        assert data["output"] == {"answer": 42} and data["correlationId"] == "c-done"
    if status == "FAILED":
        assert "boom" in (data["reasonForIncompletion"] or "")
    if status == "TERMINATED":
        assert data["reasonForIncompletion"] == "stop it"
    if status == "TIMED_OUT":
        assert "timed out" in (data["reasonForIncompletion"] or "").lower()


def decode_kafka(record: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    headers = {k: v.decode() for k, v in record.headers}
    if headers["content-type"].startswith("application/cloudevents+json"):
        document = json.loads(record.value)
        data = document.pop("data")
        return document, data
    attributes = {k[3:]: v for k, v in headers.items() if k.startswith("ce_")}
    attributes["datacontenttype"] = headers["content-type"]
    return attributes, json.loads(record.value)


def decode_amqp(message: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    if message.content_type.startswith("application/cloudevents+json"):
        document = json.loads(message.body)
        data = document.pop("data")
        return document, data
    prefix = "cloudEvents:"
    attributes = {k[len(prefix) :]: v for k, v in message.headers.items() if k.startswith(prefix)}
    attributes["datacontenttype"] = message.content_type
    return attributes, json.loads(message.body)


@pytest.mark.parametrize("mode", ["structured", "binary"])
async def test_one_kafka_event_per_terminal_status(
    conductor: ConductorClient, store: SqliteStore, kafka_bootstrap: str, amqp_url: str, mode: Mode
) -> None:
    topic = await new_topic(kafka_bootstrap)
    ids = await one_of_each(conductor)
    for wf in ids.values():
        await store.track(wf, track(f"kafka:{topic}"))
    async with (
        Publisher(settings_for(kafka_bootstrap, amqp_url)) as publisher,
        Tracker(store, conductor, publisher, FAST, mode=mode),
    ):
        records = await consume_kafka(kafka_bootstrap, topic, 4, linger=1.0)
    assert len(records) == 4  # and nothing more
    seen = {}
    for record in records:
        attributes, data = decode_kafka(record)
        seen[data["status"]] = (attributes, data)
        assert record.key == data["workflowId"].encode()
    assert set(seen) == set(ids)
    for status, (attributes, data) in seen.items():
        check_event(attributes, data, status, ids[status])
    assert await store.pending_count() == 0


@pytest.mark.parametrize("mode", ["binary", "structured"])
async def test_one_amqp_event_per_terminal_status(
    conductor: ConductorClient, store: SqliteStore, kafka_bootstrap: str, amqp_url: str, mode: Mode
) -> None:
    queue = await declare_queue(amqp_url)
    ids = await one_of_each(conductor)
    for wf in ids.values():
        await store.track(wf, track(f"amqp:{queue}"))
    async with (
        Publisher(settings_for(kafka_bootstrap, amqp_url)) as publisher,
        Tracker(store, conductor, publisher, FAST, mode=mode),
    ):
        messages = await get_amqp(amqp_url, queue, 4)
        await asyncio.sleep(0.5)
    assert await queue_depth(amqp_url, queue) == 0  # nothing beyond the four
    for message in messages:
        attributes, data = decode_amqp(message)
        check_event(attributes, data, data["status"], ids[data["status"]])
        if mode == "binary":
            assert message.message_id == attributes["id"]
    assert {decode_amqp(m)[1]["status"] for m in messages} == set(ids)


async def test_unroutable_amqp_completion_stays_pending(
    conductor: ConductorClient, store: SqliteStore, kafka_bootstrap: str, amqp_url: str
) -> None:
    wf = await conductor.start_workflow(FLOW, 1, {})
    await conductor.terminate(wf, reason="done")
    await store.track(wf, track(f"amqp:nobody-listens-{uuid.uuid4().hex}"))
    async with Publisher(settings_for(kafka_bootstrap, amqp_url)) as publisher:
        tracker = Tracker(store, conductor, publisher, FAST)
        for _ in range(2):
            await tracker.run_once()
            await asyncio.sleep(FAST.max_interval)
    assert tracker.published == 0
    [row] = await store.due(time.time() + 60, 10)
    assert row.workflow_id == wf and row.attempts == 2


async def test_restart_with_100_pending_completions_loses_none(
    conductor: ConductorClient, tmp_path: Path, kafka_bootstrap: str, amqp_url: str
) -> None:
    topic = await new_topic(kafka_bootstrap)
    path = tmp_path / "restart.db"
    settings = settings_for(kafka_bootstrap, amqp_url)
    ids = [await conductor.start_workflow(FLOW, 1, {"i": i}) for i in range(100)]
    async with SqliteStore(path, first_poll_delay=0.0) as store:
        for wf in ids:
            await store.record_start(f"kafka:in:0:{wf}", wf, "e2e", track(f"kafka:{topic}"))
    await complete_tasks(conductor, 50)

    # First life: the tracker publishes some, then stops in the middle of its work.
    async with (
        SqliteStore(path) as store,
        Publisher(settings) as publisher,
        Tracker(store, conductor, publisher, FAST, stop_grace=0.05) as tracker,
    ):
        async with asyncio.timeout(20):
            while tracker.published < 20:
                await asyncio.sleep(0.01)
    await complete_tasks(conductor, 50)

    # Second life: a new store, publisher and tracker pick up what is left.
    async with (
        SqliteStore(path) as store,
        Publisher(settings) as publisher,
        Tracker(store, conductor, publisher, FAST),
    ):
        async with asyncio.timeout(30):
            while await store.pending_count():
                await asyncio.sleep(0.05)
    records = await consume_kafka(kafka_bootstrap, topic, 100, linger=1.0)
    per_workflow: dict[str, set[str]] = {}
    for record in records:
        document = json.loads(record.value)
        assert document["id"] == f"{document['subject']}:COMPLETED:{document['data']['endTime']}"
        per_workflow.setdefault(document["subject"], set()).add(document["id"])
    assert set(per_workflow) == set(ids)  # none lost
    assert all(len(v) == 1 for v in per_workflow.values())  # one id each
    duplicates = len(records) - len(ids)
    assert duplicates <= FAST.concurrency  # at most what was in flight when the first life stopped
    print(f"restart: {len(records)} events for {len(ids)} workflows, {duplicates} duplicates")


async def complete_tasks(client: ConductorClient, count: int) -> None:
    done = 0
    async with asyncio.timeout(30):
        while done < count:
            task = await client.poll_task(TASK, worker_id="restart-worker")
            if task is None:
                await asyncio.sleep(0.02)
                continue
            await client.update_task(
                task.task_id, task.workflow_instance_id or "", "COMPLETED", {"answer": done}
            )
            done += 1

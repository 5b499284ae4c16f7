"""Batched store and Conductor look-ups (issue 18): duplicates inside one fetched batch, and a
batch cut by kill -9, still give exactly one workflow per event identity."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import pytest

from gateway.conductor.client import ConductorClient
from gateway.devserver.server import DevServer
from tests.daemon.conftest import (
    KafkaBroker,
    committed_and_end,
    create_topic,
    eventually,
    make_settings,
    producer,
    running,
    unique,
    wait_workflow,
    workflows_of,
)
from tests.daemon.test_faults import assert_one_workflow_per_event, exactly_once_rules

pytestmark = pytest.mark.brokers

PARTITIONS = 3


async def produce_repeats(kafka: KafkaBroker, topic: str, ids: int, repeats: int) -> None:
    """`repeats` copies of each event e0..e{ids-1}, with different message keys and partitions,
    so copies of one id sit in one fetched batch and on partitions handled concurrently."""
    async with producer(kafka.bootstrap, idempotence=kafka.idempotence) as p:
        for copy in range(repeats):
            for i in range(ids):
                body = json.dumps({"id": f"e{i}"}).encode()
                partition = (i + copy) % PARTITIONS
                await p.send(topic, body, key=f"k{i}-{copy}".encode(), partition=partition)
        await p.flush()


async def all_committed(kafka: KafkaBroker, group: str, topic: str) -> bool:
    committed, end = await committed_and_end(kafka.bootstrap, group, topic, PARTITIONS)
    return committed == end


async def test_a_backlog_with_each_business_key_three_times_starts_one_workflow_per_key(
    kafka: KafkaBroker, devserver: DevServer, conductor: ConductorClient, tmp_path: Path
) -> None:
    topic, workflow, ids = unique("orders"), unique("order_flow"), 200
    await conductor.register_workflow_def(wait_workflow(workflow))
    await create_topic(kafka.bootstrap, topic, PARTITIONS)
    await produce_repeats(kafka, topic, ids, repeats=3)
    settings = make_settings(
        tmp_path,
        conductor_url=devserver.url,
        kafka_bootstrap=kafka.bootstrap,
        idempotence=kafka.idempotence,
    )
    async with running(settings, exactly_once_rules(topic, workflow, "business")):
        await eventually(lambda: all_committed(kafka, settings.kafka.group_id, topic), timeout=90)
    await assert_one_workflow_per_event(conductor, workflow, ids)


@pytest.mark.slow
async def test_kill_9_inside_batches_of_repeated_keys_then_restart_gives_one_per_key(
    kafka_bootstrap: str, devserver: DevServer, conductor: ConductorClient, tmp_path: Path
) -> None:
    kafka = KafkaBroker("tansu", kafka_bootstrap, False)
    # Enough events that the kill lands mid-stream: on a quiet machine the gateway got through
    # 600 keys (1,800 records) before a 0.2 s poll had seen the first 60 start.
    topic, workflow, group, ids = unique("orders"), unique("order_flow"), unique("gw"), 1500
    await conductor.register_workflow_def(wait_workflow(workflow))
    await create_topic(kafka.bootstrap, topic, PARTITIONS)
    await produce_repeats(kafka, topic, ids, repeats=3)
    rules = tmp_path / "rules.yaml"
    rules.write_text(exactly_once_rules(topic, workflow, "business"))
    config = tmp_path / "gateway.yaml"
    config.write_text(
        json.dumps(
            {
                "kafka": kafka.config(group_id=group, session_timeout_ms=6000),
                "conductor": {"url": devserver.url, "flavor": "oss"},
                "store": {"sqlite_path": str(tmp_path / "gw.db")},
                "admin": {"port": 0},
                "rules_file": str(rules),
            }
        )
    )
    command = [sys.executable, "-m", "gateway", "run", "--config", str(config)]
    first = await asyncio.create_subprocess_exec(*command, stderr=asyncio.subprocess.DEVNULL)
    try:

        async def some_started() -> bool:  # a count, not the list: a cheap, quick poll
            found = await conductor.search(query=f"workflowType = {workflow}", size=1)
            return found.total_hits >= 60

        await eventually(some_started, timeout=60, interval=0.02)
        first.send_signal(signal.SIGKILL)  # mid-stream: starts made, records in flight
        await first.wait()
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
    assert len(await workflows_of(conductor, workflow)) < ids, "killed after all had started"
    second = await asyncio.create_subprocess_exec(*command, stderr=asyncio.subprocess.DEVNULL)
    try:
        await eventually(lambda: all_committed(kafka, group, topic), timeout=120)
        second.terminate()
        assert await asyncio.wait_for(second.wait(), 40) == 0
    finally:
        if second.returncode is None:
            second.kill()
            await second.wait()
    await assert_one_workflow_per_event(conductor, workflow, ids)

"""Faults: Conductor unreachable mid-stream, and the gateway killed with SIGKILL mid-stream."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections import Counter
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
from tests.proxy import TcpProxy

pytestmark = pytest.mark.brokers


def exactly_once_rules(topic: str, workflow: str, keys: str) -> str:
    """A start rule whose correlation id is the event's identity, so a start whose answer was
    lost can be found again instead of repeated: given by the rule (`business`: the body's id
    is both idempotency key and correlation id) or left to the gateway (`default`: the
    message's topic:partition:offset becomes the correlation id)."""
    business = keys == "business"
    key_line = '\n    idempotency_key: "${body.id}"' if business else ""
    cid_line = '\n      correlation_id: "${body.id}"' if business else ""
    return f"""
version: 1
rules:
  - name: start-order
    source: {{topic: {topic}}}{key_line}
    retry: {{initial_backoff: 0.2, max_backoff: 2.0, max_attempts: 100}}
    start_workflow:
      name: {workflow}
      input: {{order: "${{body.id}}"}}{cid_line}
"""


KEYS = pytest.mark.parametrize("keys", ["business", "default"])


async def produce_slowly(
    kafka: KafkaBroker, topic: str, count: int, partitions: int, per_second: float
) -> None:
    async with producer(kafka.bootstrap, idempotence=kafka.idempotence) as p:
        for i in range(count):
            body = json.dumps({"id": f"e{i}"}).encode()
            await p.send(topic, body, key=f"k{i % 31}".encode(), partition=i % partitions)
            if i % 10 == 9:
                await p.flush()
                await asyncio.sleep(10 / per_second)
        await p.flush()


async def assert_one_workflow_per_event(client: ConductorClient, workflow: str, count: int) -> None:
    """Every event e0..e{count-1} has exactly one workflow, judged by the event id each
    workflow carries in its input (independent of how the gateway deduplicates)."""
    # Distinct workflow ids: a search result may list one workflow twice; that is not a start.
    workflow_ids = sorted({w.workflow_id for w in await workflows_of(client, workflow)})
    limit = asyncio.Semaphore(32)

    async def order_of(workflow_id: str) -> object:
        async with limit:
            full = await client.get_workflow(workflow_id, include_tasks=False)
        return full.input.get("order")

    orders = await asyncio.gather(*(order_of(w) for w in workflow_ids))
    by_event: dict[object, list[str]] = {}
    for order, workflow_id in zip(orders, workflow_ids, strict=True):
        by_event.setdefault(order, []).append(workflow_id)
    duplicates = {order: ids for order, ids in by_event.items() if len(ids) > 1}
    assert not duplicates, f"events with more than one workflow: {duplicates}"
    per_event = Counter(orders)
    assert set(per_event) == {f"e{i}" for i in range(count)}


@KEYS
async def test_conductor_down_for_ten_seconds_loses_and_duplicates_nothing(
    kafka: KafkaBroker,
    devserver: DevServer,
    conductor: ConductorClient,
    tmp_path: Path,
    keys: str,
) -> None:
    topic, workflow, count = unique("orders"), unique("order_flow"), 600
    await conductor.register_workflow_def(wait_workflow(workflow))
    await create_topic(kafka.bootstrap, topic, 2)
    async with TcpProxy("127.0.0.1", devserver.port) as proxy:
        url = f"http://127.0.0.1:{proxy.port}/api"
        settings = make_settings(
            tmp_path,
            conductor_url=url,
            kafka_bootstrap=kafka.bootstrap,
            idempotence=kafka.idempotence,
            conductor={"max_retries": 1, "request_timeout": 2.0},
        )
        async with running(settings, exactly_once_rules(topic, workflow, keys)) as gateway:
            feeding = asyncio.create_task(produce_slowly(kafka, topic, count, 2, per_second=60))

            async def some_started() -> bool:
                return len(await workflows_of(conductor, workflow)) >= 100

            await eventually(some_started, timeout=60)
            await proxy.cut()
            await asyncio.sleep(10)
            assert gateway.pipeline is not None
            paused = not gateway.pipeline.intake.is_set()
            during = len(await workflows_of(conductor, workflow))
            await proxy.restore()
            await feeding

            async def all_started() -> bool:
                return len(await workflows_of(conductor, workflow)) >= count

            await eventually(all_started, timeout=90)

            async def all_committed() -> bool:
                committed, end = await committed_and_end(
                    kafka.bootstrap, settings.kafka.group_id, topic, 2
                )
                return committed == end

            await eventually(all_committed, timeout=30)
            dead = gateway.metrics.total("gateway_dead_letters_total")
    assert paused, "intake was not paused while Conductor was unreachable"
    assert during < count, "the outage happened after everything was processed"
    assert dead == 0
    await assert_one_workflow_per_event(conductor, workflow, count)


@KEYS
async def test_kill_9_mid_stream_then_restart_gives_one_workflow_per_event(
    kafka: KafkaBroker,
    devserver: DevServer,
    conductor: ConductorClient,
    tmp_path: Path,
    keys: str,
) -> None:
    topic, workflow, count = unique("orders"), unique("order_flow"), 1500
    group = unique("gw")
    await conductor.register_workflow_def(wait_workflow(workflow))
    await create_topic(kafka.bootstrap, topic, 3)
    rules = tmp_path / "rules.yaml"
    rules.write_text(exactly_once_rules(topic, workflow, keys))
    config = tmp_path / "gateway.yaml"
    config.write_text(
        json.dumps(
            {
                "kafka": kafka.config(
                    group_id=group, session_timeout_ms=6000, group_instance_id="gw-1"
                ),
                "conductor": {"url": devserver.url, "flavor": "oss"},
                "store": {"sqlite_path": str(tmp_path / "gw.db")},
                "admin": {"port": 0},
                "rules_file": str(rules),
                "logging": {"format": "text"},
            }
        )
    )
    async with producer(kafka.bootstrap, idempotence=kafka.idempotence) as p:
        for i in range(count):
            body = json.dumps({"id": f"e{i}"}).encode()
            await p.send(topic, body, key=f"k{i % 31}".encode(), partition=i % 3)
        await p.flush()
    command = [sys.executable, "-m", "gateway", "run", "--config", str(config)]
    first = await asyncio.create_subprocess_exec(*command, stderr=asyncio.subprocess.DEVNULL)
    try:

        async def some_started() -> bool:  # a count, not the list: a cheap, quick poll
            found = await conductor.search(query=f"workflowType = {workflow}", size=1)
            return found.total_hits >= 300

        # A 20 ms poll: the gateway starts about a thousand of these a second, so a slower
        # poll let it finish all 1,500 before the kill.
        await eventually(some_started, timeout=60, interval=0.02)
        first.send_signal(signal.SIGKILL)
        await first.wait()
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
    killed_at = len(await workflows_of(conductor, workflow))
    assert killed_at < count, "the kill came after everything was processed"
    second = await asyncio.create_subprocess_exec(*command, stderr=asyncio.subprocess.DEVNULL)
    try:

        async def all_started() -> bool:
            return len(await workflows_of(conductor, workflow)) >= count

        await eventually(all_started, timeout=120)

        async def all_committed() -> bool:  # redeliveries of the killed run's batch settled too
            committed, end = await committed_and_end(kafka.bootstrap, group, topic, 3)
            return committed == end

        await eventually(all_committed, timeout=60)
        second.terminate()
        assert await asyncio.wait_for(second.wait(), 40) == 0
    finally:
        if second.returncode is None:
            second.kill()
            await second.wait()
    await assert_one_workflow_per_event(conductor, workflow, count)


async def test_a_second_gateway_joining_mid_stream_rebalances_without_loss_or_duplicates(
    kafka: KafkaBroker, devserver: DevServer, conductor: ConductorClient, tmp_path: Path
) -> None:
    topic, workflow, count = unique("orders"), unique("order_flow"), 1200
    await conductor.register_workflow_def(wait_workflow(workflow))
    await create_topic(kafka.bootstrap, topic, 4)
    first = make_settings(
        tmp_path / "a",
        conductor_url=devserver.url,
        kafka_bootstrap=kafka.bootstrap,
        idempotence=kafka.idempotence,
    )
    group = first.kafka.group_id
    second = make_settings(
        tmp_path / "b",
        conductor_url=devserver.url,
        kafka_bootstrap=kafka.bootstrap,
        idempotence=kafka.idempotence,
        kafka={"group_id": group},
    )
    rules = exactly_once_rules(topic, workflow, "default")
    async with running(first, rules) as gateway_a:
        feeding = asyncio.create_task(produce_slowly(kafka, topic, count, 4, per_second=150))

        async def some_started() -> bool:
            return len(await workflows_of(conductor, workflow)) >= 200

        await eventually(some_started, timeout=60)
        async with running(second, rules) as gateway_b:
            await feeding

            async def all_started() -> bool:
                return len(await workflows_of(conductor, workflow)) >= count

            await eventually(all_started, timeout=90)

            async def all_committed() -> bool:
                committed, end = await committed_and_end(kafka.bootstrap, group, topic, 4)
                return committed == end

            await eventually(all_committed, timeout=30)
            taken_by_b = gateway_b.metrics.total("gateway_events_received_total")
        assert gateway_a.metrics.total("gateway_dead_letters_total") == 0
    assert taken_by_b > 0, "the second gateway never received a partition"
    await assert_one_workflow_per_event(conductor, workflow, count)

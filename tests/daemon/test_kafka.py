"""The daemon against real Kafka (Tansu and Apache Kafka) and the dev server: starts, commits,
dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from gateway.conductor.client import ConductorClient
from gateway.devserver.server import DevServer
from tests.daemon.conftest import (
    KafkaBroker,
    committed_and_end,
    create_topic,
    eventually,
    make_settings,
    producer,
    read_topic,
    running,
    unique,
    wait_workflow,
    workflows_of,
)

pytestmark = pytest.mark.brokers


def start_rules(topic: str, workflow: str, dlq: str) -> str:
    """Start `workflow` per event; events with kind=bad start a workflow Conductor lacks."""
    return f"""
version: 1
defaults:
  dead_letter: kafka:{dlq}
rules:
  - name: start-unknown
    source: {{topic: {topic}}}
    match: {{body: {{kind: [bad]}}}}
    start_workflow:
      name: no_such_workflow
      correlation_id: "${{body.id}}"
  - name: start-order
    source: {{topic: {topic}}}
    start_workflow:
      name: {workflow}
      input: {{order: "${{body.id}}"}}
      correlation_id: "${{body.id}}"
"""


async def test_thousand_events_start_thousand_workflows_and_commit(
    kafka: KafkaBroker, devserver: DevServer, conductor: ConductorClient, tmp_path: Path
) -> None:
    topic, workflow = unique("orders"), unique("order_flow")
    await conductor.register_workflow_def(wait_workflow(workflow))
    await create_topic(kafka.bootstrap, topic, 4)
    settings = make_settings(
        tmp_path,
        conductor_url=devserver.url,
        kafka_bootstrap=kafka.bootstrap,
        idempotence=kafka.idempotence,
    )
    async with running(settings, start_rules(topic, workflow, topic + ".dlq")):
        async with producer(kafka.bootstrap, idempotence=kafka.idempotence) as p:
            for i in range(1000):
                body = json.dumps({"id": f"e{i}"}).encode()
                await p.send(topic, body, key=f"k{i % 97}".encode(), partition=i % 4)
            await p.flush()

        async def all_started() -> bool:
            return len(await workflows_of(conductor, workflow)) >= 1000

        await eventually(all_started, timeout=120)

        async def all_committed() -> bool:
            committed, end = await committed_and_end(
                kafka.bootstrap, settings.kafka.group_id, topic, 4
            )
            return committed == end

        await eventually(all_committed, timeout=30)

    found = await workflows_of(conductor, workflow)
    per_event = Counter(w.correlation_id for w in found)
    assert len(per_event) == 1000 and max(per_event.values()) == 1
    committed, end = await committed_and_end(kafka.bootstrap, settings.kafka.group_id, topic, 4)
    assert committed == end == {0: 250, 1: 250, 2: 250, 3: 250}


async def test_poison_and_failing_messages_are_dead_lettered_and_the_partition_flows(
    kafka: KafkaBroker, devserver: DevServer, conductor: ConductorClient, tmp_path: Path
) -> None:
    topic, workflow, dlq = unique("orders"), unique("order_flow"), unique("orders-dlq")
    await conductor.register_workflow_def(wait_workflow(workflow))
    await create_topic(kafka.bootstrap, topic, 1)
    await create_topic(kafka.bootstrap, dlq, 1)
    settings = make_settings(
        tmp_path,
        conductor_url=devserver.url,
        kafka_bootstrap=kafka.bootstrap,
        idempotence=kafka.idempotence,
        limits={"max_json_depth": 8},
    )
    messages = [
        json.dumps({"id": "good-1"}).encode(),
        b"{not json",  # poison: not JSON
        json.dumps({"id": "good-2"}).encode(),
        json.dumps({"id": "bad-wf", "kind": "bad"}).encode(),  # 404 on start
        b"\xff\xfe\x00binary",  # poison: not UTF-8
        json.dumps({"id": "deep", "x": [[[[[[[[[[1]]]]]]]]]]}).encode(),  # too deep
        json.dumps({"id": "good-3"}).encode(),
    ]
    async with running(settings, start_rules(topic, workflow, dlq)):
        async with producer(kafka.bootstrap, idempotence=kafka.idempotence) as p:
            for body in messages:
                await p.send_and_wait(topic, body, key=b"same-key", headers=[("trace", b"t-1")])
        dead = await read_topic(kafka.bootstrap, dlq, 4, timeout=60)

        async def good_started() -> bool:
            return len(await workflows_of(conductor, workflow)) == 3

        await eventually(good_started, timeout=30)

        async def all_committed() -> bool:
            committed, end = await committed_and_end(
                kafka.bootstrap, settings.kafka.group_id, topic, 1
            )
            return committed == end == {0: len(messages)}

        await eventually(all_committed, timeout=30)

    started = sorted(w.correlation_id for w in await workflows_of(conductor, workflow))
    assert started == ["good-1", "good-2", "good-3"]
    assert [r.value for r in dead] == [messages[1], messages[3], messages[4], messages[5]]
    for record in dead:
        headers = {k: v.decode() for k, v in record.headers}
        assert record.key == b"same-key"
        assert headers["trace"] == "t-1"  # the original headers are kept
        assert headers["x-gateway-error-origin"] == f"kafka:{topic}"
        assert headers["x-gateway-error-topic"] == topic
        assert headers["x-gateway-error-partition"] == "0"
        assert headers["x-gateway-error-offset"] == str(messages.index(record.value))
        assert headers["x-gateway-error-reason"]
        assert headers["x-gateway-error-first-seen"]
    by_offset = {int(dict(r.headers)["x-gateway-error-offset"]): dict(r.headers) for r in dead}
    assert b"not JSON" in by_offset[1]["x-gateway-error-reason"]
    assert by_offset[3]["x-gateway-error-rule"] == b"start-unknown"
    assert by_offset[3]["x-gateway-error-class"] in (b"NotFound", b"BadRequest")
    assert by_offset[3]["x-gateway-error-conductor-status"] in (b"404", b"400")
    assert b"UTF-8" in by_offset[4]["x-gateway-error-reason"]
    assert b"depth" in by_offset[5]["x-gateway-error-reason"]


async def test_sigterm_drains_commits_and_exits_zero(
    kafka: KafkaBroker, devserver: DevServer, conductor: ConductorClient, tmp_path: Path
) -> None:
    topic, workflow = unique("orders"), unique("order_flow")
    await conductor.register_workflow_def(wait_workflow(workflow))
    await create_topic(kafka.bootstrap, topic, 2)
    group = unique("gw")
    rules = tmp_path / "rules.yaml"
    rules.write_text(start_rules(topic, workflow, topic + ".dlq"))
    config = tmp_path / "gateway.yaml"
    config.write_text(
        json.dumps(
            {
                "kafka": kafka.config(group_id=group, max_in_flight_per_partition=20),
                "conductor": {"url": devserver.url, "flavor": "oss"},
                "store": {"sqlite_path": str(tmp_path / "gw.db")},
                "admin": {"port": 0},
                "rules_file": str(rules),
                "shutdown_grace_seconds": 20,
                "logging": {"format": "text"},
            }
        )
    )
    async with producer(kafka.bootstrap, idempotence=kafka.idempotence) as p:
        for i in range(3000):
            await p.send(topic, json.dumps({"id": f"e{i}"}).encode(), partition=i % 2)
        await p.flush()
    process = await asyncio.create_subprocess_exec(
        *gateway_command(),
        "run",
        "--config",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:

        async def some_started() -> bool:
            return len(await workflows_of(conductor, workflow)) >= 300

        await eventually(some_started, timeout=60)
        process.terminate()
        _out, err = await asyncio.wait_for(process.communicate(), 40)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()[-2000:]
    committed, _end = await committed_and_end(kafka.bootstrap, group, topic, 2)
    started = await workflows_of(conductor, workflow)
    # Every started workflow is covered by the commit and nothing committed lacks a workflow.
    assert sum(committed.values()) == len(started)
    assert 300 <= len(started) <= 3000


def gateway_command() -> list[str]:
    import sys

    return [sys.executable, "-m", "gateway"]


async def test_dlq_replay_reinjects_dead_letters_of_one_rule(
    kafka_bootstrap: str, devserver: DevServer, conductor: ConductorClient, tmp_path: Path
) -> None:
    topic, dlq, workflow = unique("orders"), unique("orders-dlq"), unique("late_flow")
    await create_topic(kafka_bootstrap, topic, 1)
    await create_topic(kafka_bootstrap, dlq, 1)
    rules = f"""
version: 1
defaults: {{dead_letter: "kafka:{dlq}"}}
rules:
  - name: start-late
    source: {{topic: {topic}}}
    start_workflow: {{name: {workflow}, correlation_id: "${{body.id}}"}}
"""
    settings = make_settings(tmp_path, conductor_url=devserver.url, kafka_bootstrap=kafka_bootstrap)
    config = tmp_path / "replay.yaml"
    (tmp_path / "rules.yaml").write_text(rules)  # replay publishes only to rule sources
    config.write_text(
        json.dumps(
            {
                "kafka": {"bootstrap_servers": kafka_bootstrap, "enable_idempotence": False},
                "rules_file": str(tmp_path / "rules.yaml"),
            }
        )
    )
    async with running(settings, rules):
        async with producer(kafka_bootstrap) as p:
            for i in range(2):
                await p.send_and_wait(topic, json.dumps({"id": f"late-{i}"}).encode())
        await read_topic(kafka_bootstrap, dlq, 2)  # the workflow is not defined yet
        await conductor.register_workflow_def(wait_workflow(workflow))
        process = await asyncio.create_subprocess_exec(
            *gateway_command(),
            "dlq",
            "replay",
            "--from",
            f"kafka:{dlq}",
            "--rule",
            "start-late",
            "--config",
            str(config),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()[-2000:]
        assert "replayed 2" in out.decode()

        async def started() -> bool:
            return len(await workflows_of(conductor, workflow)) == 2

        await eventually(started, timeout=30)
    ids = sorted(w.correlation_id for w in await workflows_of(conductor, workflow))
    assert ids == ["late-0", "late-1"]


async def test_transactional_producers_aborted_events_start_nothing_and_commits_reach_the_end(
    apache_kafka_bootstrap: str,
    devserver: DevServer,
    conductor: ConductorClient,
    tmp_path: Path,
) -> None:
    """Events written in Kafka transactions (Apache Kafka; Tansu has none): a committed
    transaction's events start one workflow each, an aborted one's start nothing, and the commit
    passes the transaction markers (offsets that hold no event) up to the end, so no lag is
    left behind."""
    bootstrap = apache_kafka_bootstrap
    topic, workflow = unique("orders"), unique("order_flow")
    await conductor.register_workflow_def(wait_workflow(workflow))
    await create_topic(bootstrap, topic, 1)
    settings = make_settings(
        tmp_path, conductor_url=devserver.url, kafka_bootstrap=bootstrap, idempotence=True
    )
    transactional = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=unique("tx"))
    await transactional.start()
    try:
        async with running(settings, start_rules(topic, workflow, topic + ".dlq")):
            async with transactional.transaction():
                for i in range(3):
                    await transactional.send(topic, json.dumps({"id": f"kept-{i}"}).encode())
            await transactional.begin_transaction()
            await transactional.send(topic, json.dumps({"id": "aborted"}).encode())
            await transactional.abort_transaction()
            async with transactional.transaction():
                await transactional.send(topic, json.dumps({"id": "last"}).encode())

            async def all_committed() -> bool:
                committed, end = await committed_and_end(
                    bootstrap, settings.kafka.group_id, topic, 1
                )
                return committed == end

            with contextlib.suppress(AssertionError):
                await eventually(all_committed, timeout=30)
            committed, end = await committed_and_end(bootstrap, settings.kafka.group_id, topic, 1)
            # 3 events + marker, aborted event + marker, 1 event + marker
            assert committed == end == {0: 8}
    finally:
        await transactional.stop()
    started = sorted(w.correlation_id for w in await workflows_of(conductor, workflow))
    assert started == ["kept-0", "kept-1", "kept-2", "last"]


async def test_events_behind_a_transaction_still_open_are_not_lag(
    apache_kafka_bootstrap: str,
    devserver: DevServer,
    conductor: ConductorClient,
    tmp_path: Path,
) -> None:
    """Events behind a transaction still open cannot be read yet: the gateway reports no lag
    for them (lag without progress is reported as a stall after a minute, and the transactions
    of exactly-once pipelines stay open for minutes); once it commits, they start workflows."""
    bootstrap = apache_kafka_bootstrap
    topic, workflow = unique("orders"), unique("order_flow")
    await conductor.register_workflow_def(wait_workflow(workflow))
    await create_topic(bootstrap, topic, 1)
    settings = make_settings(
        tmp_path, conductor_url=devserver.url, kafka_bootstrap=bootstrap, idempotence=True
    )
    transactional = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=unique("tx"))
    await transactional.start()
    try:
        await transactional.begin_transaction()
        await transactional.send_and_wait(topic, json.dumps({"id": "in-transaction"}).encode())
        async with producer(bootstrap, idempotence=True) as p:
            await p.send_and_wait(topic, json.dumps({"id": "behind-it"}).encode())
        async with running(settings, start_rules(topic, workflow, topic + ".dlq")) as gateway:
            series = f'gateway_consumer_lag{{partition="0",topic="{topic}"}} '

            async def lag_measured() -> bool:
                return series in gateway.metrics.render()

            await eventually(lag_measured, timeout=30)
            [lag] = [m for m in gateway.metrics.render().splitlines() if m.startswith(series)]
            assert lag == f"{series}0", lag
            assert await workflows_of(conductor, workflow) == []
            await transactional.commit_transaction()

            async def both_started() -> bool:
                return len(await workflows_of(conductor, workflow)) == 2

            await eventually(both_started, timeout=30)
    finally:
        await transactional.stop()
    started = sorted(w.correlation_id for w in await workflows_of(conductor, workflow))
    assert started == ["behind-it", "in-transaction"]

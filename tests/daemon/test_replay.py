"""`gateway dlq replay` against real Tansu and RabbitMQ: it ends even while replayed messages
fail again, it publishes only to origins the rules consume (or to an explicit --to), and
--dry-run publishes and settles nothing."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from gateway.devserver.server import DevServer
from gateway.replay import replay
from gateway.settings import Settings
from tests.daemon.conftest import (
    committed_and_end,
    create_topic,
    eventually,
    make_settings,
    producer,
    read_topic,
    running,
    unique,
)

pytestmark = pytest.mark.brokers

ORIGIN = "x-gateway-error-origin"


def start_rules(source: str, workflow: str, dead_letter: str = "") -> str:
    defaults = f'defaults: {{dead_letter: "{dead_letter}"}}' if dead_letter else ""
    return f"""
version: 1
{defaults}
rules:
  - name: start-late
    source: {source}
    start_workflow: {{name: {workflow}, correlation_id: "${{body.id}}"}}
"""


def settings_with_rules(tmp_path: Path, rules: str, **kwargs: Any) -> Settings:
    path = tmp_path / "rules.yaml"
    path.write_text(rules)
    return make_settings(tmp_path, rules_file=path, **kwargs)


async def topic_end(bootstrap: str, topic: str) -> int:
    _committed, end = await committed_and_end(bootstrap, unique("probe"), topic, 1)
    return end[0]


async def test_kafka_replay_ends_although_the_replayed_dead_letters_fail_again(
    kafka_bootstrap: str, devserver: DevServer, tmp_path: Path
) -> None:
    topic, dlq, workflow = unique("orders"), unique("orders-dlq"), unique("never_defined")
    await create_topic(kafka_bootstrap, topic, 1)
    await create_topic(kafka_bootstrap, dlq, 1)
    rules = start_rules(f"{{topic: {topic}}}", workflow, f"kafka:{dlq}")
    settings = settings_with_rules(
        tmp_path, rules, conductor_url=devserver.url, kafka_bootstrap=kafka_bootstrap
    )
    async with running(settings, rules):
        async with producer(kafka_bootstrap) as p:
            for i in range(3):
                await p.send_and_wait(topic, json.dumps({"id": f"e{i}"}).encode())
        await read_topic(kafka_bootstrap, dlq, 3)  # the workflow is never defined
        # Each replayed message fails again and is dead-lettered again while the replay runs.
        first = await asyncio.wait_for(replay(settings, f"kafka:{dlq}"), 60)

        async def dead_again() -> bool:
            return await topic_end(kafka_bootstrap, dlq) == 6

        await eventually(dead_again, timeout=30)
        second = await asyncio.wait_for(replay(settings, f"kafka:{dlq}"), 60)
    assert (first.replayed, first.refused) == (3, 0)
    assert (second.replayed, second.refused) == (3, 0)  # only the ones dead-lettered again


async def test_amqp_replay_ends_although_the_replayed_dead_letters_fail_again(
    amqp_url: str, devserver: DevServer, tmp_path: Path
) -> None:
    queue, exchange, workflow = unique("orders"), unique("events"), unique("never_defined")
    source = f'{{queue: {queue}, exchange: {exchange}, routing_key: "order.*"}}'
    rules = start_rules(source, workflow)
    settings = settings_with_rules(tmp_path, rules, conductor_url=devserver.url, amqp_url=amqp_url)
    connection = await aio_pika.connect(amqp_url)
    async with connection, running(settings, rules) as gateway:
        channel = await connection.channel()
        ex = await channel.get_exchange(exchange)
        for i in range(2):
            body = json.dumps({"id": f"e{i}"}).encode()
            await ex.publish(aio_pika.Message(body, message_id=f"m-{i}"), routing_key="order.new")

        async def dead(count: int) -> bool:
            return gateway.metrics.total("gateway_dead_letters_total") >= count

        await eventually(lambda: dead(2), timeout=30)
        report = await asyncio.wait_for(replay(settings, f"amqp:{queue}.dlq"), 60)
        await eventually(lambda: dead(4), timeout=30)
        dlq = await channel.declare_queue(f"{queue}.dlq", durable=True, passive=True)
        left = dlq.declaration_result.message_count
    assert (report.replayed, report.refused) == (2, 0)
    assert left == 2  # dead-lettered again, and not replayed again by the same run


async def test_kafka_replay_refuses_an_origin_the_rules_do_not_consume_unless_given_to(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic, dlq, elsewhere = unique("orders"), unique("orders-dlq"), unique("elsewhere")
    for name in (topic, dlq, elsewhere):
        await create_topic(kafka_bootstrap, name, 1)
    settings = settings_with_rules(
        tmp_path,
        start_rules(f"{{topic: {topic}}}", "wf"),
        conductor_url="http://127.0.0.1:1/api",
        kafka_bootstrap=kafka_bootstrap,
    )
    origins = [f"kafka:{topic}", "kafka:payroll", f"kafka:{topic}"]
    async with producer(kafka_bootstrap) as p:
        for i, origin in enumerate(origins):
            headers = [(ORIGIN, origin.encode()), ("x-gateway-error-reason", b"boom")]
            await p.send_and_wait(dlq, json.dumps({"id": i}).encode(), headers=headers)
    lines: list[str] = []
    first = await replay(settings, f"kafka:{dlq}", say=lines.append)
    assert (first.replayed, first.refused) == (1, 1)
    assert lines == [
        f"refused kafka:{dlq} partition 0 offset 1: origin kafka:payroll is not a source of "
        f"the rules in {settings.rules_file}; give --to DESTINATION to replay it elsewhere; "
        "left in the dead letters"
    ]
    assert await topic_end(kafka_bootstrap, topic) == 1
    group = f"{settings.kafka.group_id}.dlq-replay.all"
    committed, _end = await committed_and_end(kafka_bootstrap, group, dlq, 1)
    assert committed == {0: 1}  # the refused one is still ahead of the commit
    moved = await replay(settings, f"kafka:{dlq}", to=f"kafka:{elsewhere}")
    assert (moved.replayed, moved.refused) == (2, 0)
    records = await read_topic(kafka_bootstrap, elsewhere, 2)
    assert [json.loads(r.value)["id"] for r in records] == [1, 2]
    assert all(not k.startswith("x-gateway-error-") for r in records for k, _v in r.headers)
    assert await topic_end(kafka_bootstrap, topic) == 1


async def amqp_dead_letters(url: str, queue: str, origins: list[str]) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(queue, durable=True)
        for i, origin in enumerate(origins):
            message = aio_pika.Message(json.dumps({"id": i}).encode(), headers={ORIGIN: origin})
            await channel.default_exchange.publish(message, routing_key=queue)


async def queue_counts(url: str, *queues: str) -> list[int]:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        counts = []
        for name in queues:
            queue = await channel.declare_queue(name, durable=True, passive=True)
            counts.append(int(queue.declaration_result.message_count or 0))
        return counts


async def run_cli(config: Path, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "dlq",
        "replay",
        "--config",
        str(config),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode() + err.decode()


async def test_amqp_replay_cli_refuses_foreign_origins_and_dry_run_publishes_nothing(
    amqp_url: str, tmp_path: Path
) -> None:
    queue, dlq, other = unique("orders"), unique("orders-dlq"), unique("other")
    rules = tmp_path / "rules.yaml"
    rules.write_text(start_rules(f"{{queue: {queue}}}", "wf"))
    config = tmp_path / "replay.yaml"
    config.write_text(json.dumps({"amqp": {"url": amqp_url}, "rules_file": str(rules)}))
    await amqp_dead_letters(amqp_url, queue, [])  # declares the origin queue
    await amqp_dead_letters(amqp_url, other, [])
    await amqp_dead_letters(amqp_url, dlq, [f"amqp:{queue}", "amqp:payroll", f"amqp:{queue}"])

    code, out = await run_cli(config, "--from", f"amqp:{dlq}", "--dry-run")
    assert code == 1, out  # a refusal is reported in the exit status
    assert out.count("would replay amqp:") == 2 and f"to amqp:{queue}" in out, out
    assert "refused 1" in out and "origin amqp:payroll is not a source" in out, out
    assert await queue_counts(amqp_url, dlq, queue) == [3, 0]  # nothing moved

    code, out = await run_cli(config, "--from", f"amqp:{dlq}")
    assert code == 1, out
    assert "replayed 2" in out and "refused 1" in out, out
    assert await queue_counts(amqp_url, dlq, queue) == [1, 2]  # the refused one stays

    code, out = await run_cli(config, "--from", f"amqp:{dlq}", "--to", f"amqp:{other}")
    assert code == 0, out
    assert "replayed 1" in out and "refused 0" in out, out
    assert await queue_counts(amqp_url, dlq, queue, other) == [0, 2, 1]


async def test_kafka_replay_cli_dry_run_commits_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic, dlq = unique("orders"), unique("orders-dlq")
    await create_topic(kafka_bootstrap, topic, 1)
    await create_topic(kafka_bootstrap, dlq, 1)
    rules = tmp_path / "rules.yaml"
    rules.write_text(start_rules(f"{{topic: {topic}}}", "wf"))
    group = unique("gw")
    config = tmp_path / "replay.yaml"
    config.write_text(
        json.dumps(
            {
                "kafka": {
                    "bootstrap_servers": kafka_bootstrap,
                    "enable_idempotence": False,
                    "group_id": group,
                },
                "rules_file": str(rules),
            }
        )
    )
    async with producer(kafka_bootstrap) as p:
        for i in range(2):
            headers = [(ORIGIN, f"kafka:{topic}".encode()), ("x-gateway-error-rule", b"r")]
            await p.send_and_wait(dlq, json.dumps({"id": i}).encode(), headers=headers)

    code, out = await run_cli(config, "--from", f"kafka:{dlq}", "--dry-run")
    assert code == 0, out
    assert f"would replay kafka:{dlq} partition 0 offset 1 (rule r) to kafka:{topic}" in out, out
    assert "would replay 2 dead letters" in out, out
    assert await topic_end(kafka_bootstrap, topic) == 0
    committed, _end = await committed_and_end(kafka_bootstrap, f"{group}.dlq-replay.all", dlq, 1)
    assert committed == {0: 0}

    code, out = await run_cli(config, "--from", f"kafka:{dlq}", "--limit", "1")
    assert code == 0 and "replayed 1 dead letters" in out, out
    code, out = await run_cli(config, "--from", f"kafka:{dlq}")
    assert code == 0 and "replayed 1 dead letters" in out, out
    assert await topic_end(kafka_bootstrap, topic) == 2

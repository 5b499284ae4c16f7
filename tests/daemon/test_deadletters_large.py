"""A 2 MiB poison message, as a user meets it: `gateway run` dead-letters it (over
`limits.max_message_bytes`), and `gateway dlq replay` puts the same bytes back on its topic.

On Tansu the dead-letter topic takes the 2 MiB record, so the dead letter keeps its body. On
Apache Kafka the dead-letter topic keeps the broker's 1 MiB default and refuses it: the body is
kept beside the store and the dead letter points to it (`x-gateway-error-body-ref`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from gateway.deadletters import KeptBodies, KeptBodyMissing
from tests.daemon.conftest import KafkaBroker, read_topic, unique
from tests.daemon.process import gateway_run

pytestmark = [pytest.mark.brokers, pytest.mark.slow]

BIG = 4 * 1024 * 1024  # what the source topic and the test's producer allow


async def create_topics(broker: KafkaBroker, source: str, dead: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        big = {"max.message.bytes": str(BIG)} if broker.name == "apache" else {}
        await admin.create_topics([NewTopic(source, 1, 1, topic_configs=big), NewTopic(dead, 1, 1)])
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def big_producer(broker: KafkaBroker) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap,
        enable_idempotence=broker.idempotence,
        acks="all",
        max_request_size=BIG,
    )
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def test_a_2_mib_poison_message_is_replayed_byte_for_byte(
    kafka: KafkaBroker, tmp_path: Path
) -> None:
    source, dead = unique("orders"), unique("orders-dlq")
    await create_topics(kafka, source, dead)
    body = b'{"blob": "' + os.urandom(1024 * 1024).hex().encode() + b'"}'  # 2 MiB + 12 bytes
    async with big_producer(kafka) as producer:
        await producer.send_and_wait(source, body, key=b"k-1", headers=[("trace", b"t-1")])

    rules = f"""
version: 1
defaults: {{dead_letter: "kafka:{dead}"}}
rules:
  - name: start
    source: {{topic: {source}}}
    start_workflow: {{name: never_started}}
"""
    config = {
        "kafka": kafka.config(group_id=unique("gw")),
        "conductor": {"url": "http://127.0.0.1:1/api", "flavor": "oss"},
    }
    async with gateway_run(tmp_path, rules, config) as gateway:
        [letter] = await read_topic(kafka.bootstrap, dead, 1, timeout=60)
        code = await gateway.stop(signal.SIGTERM)
    assert code == 0, gateway.tail()
    headers = {name: value.decode() for name, value in letter.headers}
    assert "over the limit" in headers["x-gateway-error-reason"]
    assert headers["trace"] == "t-1" and letter.key == b"k-1"
    kept = KeptBodies.beside_path(tmp_path / "gw.db")
    if kafka.name == "apache":  # refused for size: kept beside the store
        assert letter.value == b""
        assert headers["x-gateway-error-original-bytes"] == str(len(body))
        assert await kept.read(headers["x-gateway-error-body-ref"]) == body
    else:
        assert letter.value == body and "x-gateway-error-body-ref" not in headers

    replay = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "dlq",
        "replay",
        "--config",
        str(tmp_path / "gw.yaml"),
        "--from",
        f"kafka:{dead}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(replay.communicate(), 60)
    assert replay.returncode == 0, output.decode()
    assert b"replayed 1 dead letters" in output
    original, replayed = await read_topic(kafka.bootstrap, source, 2, timeout=60)
    assert replayed.value == original.value == body  # byte for byte
    assert replayed.key == b"k-1"
    assert ("trace", b"t-1") in list(replayed.headers)
    assert not any(name.startswith("x-gateway-error-") for name, _ in replayed.headers)


async def test_a_kept_body_that_is_missing_or_altered_is_refused(tmp_path: Path) -> None:
    kept = KeptBodies(tmp_path / "kept")
    ref = await kept.keep(b"original bytes")
    assert await kept.read(ref) == b"original bytes"
    (tmp_path / "kept" / (ref.removeprefix("sha256:") + ".bin")).write_bytes(b"altered")
    with pytest.raises(KeptBodyMissing, match="does not hold those bytes"):
        await kept.read(ref)
    await kept.forget(ref)
    with pytest.raises(KeptBodyMissing, match="cannot read"):
        await kept.read(ref)

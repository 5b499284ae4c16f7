"""The real servers the harness and `gateway dev` run: fetched once, started on loopback, real
APIs answering, stopped without leftovers, and clear words when something is missing."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from gateway.devserver import artifacts
from gateway.devserver.brokers import BrokerError
from gateway.devserver.realservers import ApacheKafka

pytestmark = pytest.mark.brokers


async def test_apache_kafka_takes_idempotent_writes_and_group_commits(
    apache_kafka_bootstrap: str,
) -> None:
    topic, group = f"t-{uuid.uuid4().hex}", f"g-{uuid.uuid4().hex}"
    # The idempotent producer is what Tansu cannot serve (InitProducerId); Apache Kafka must.
    producer = AIOKafkaProducer(
        bootstrap_servers=apache_kafka_bootstrap, enable_idempotence=True, acks="all"
    )
    await producer.start()
    try:
        for n in range(3):
            await producer.send_and_wait(topic, f'{{"n": {n}}}'.encode(), key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=apache_kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        values = [(await asyncio.wait_for(consumer.getone(), 30)).value for _ in range(3)]
        assert values == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']
        partition = TopicPartition(topic, 0)
        await consumer.commit({partition: 3})
        assert await consumer.committed(partition) == 3
    finally:
        await consumer.stop()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_gateway_dev_conductor_real_serves_the_rest_api_and_stops_clean() -> None:
    """`gateway dev conductor --real`: the same 'ready at URL' line as the dev server, a real
    Conductor behind it, and SIGTERM ends it with status 0 and no JVM left running."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "dev", "conductor", "--real", "--port", "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 240)).decode()
        assert "Conductor OSS" in line and "ready at http://127.0.0.1:" in line, line
        url = line.split("ready at ")[1].split()[0]
        name = f"rs_{uuid.uuid4().hex[:8]}"
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            r = await http.post("/metadata/taskdefs", json=[{"name": name, "retryCount": 2}])
            assert r.status_code == 200, r.text
            got = (await http.get(f"/metadata/taskdefs/{name}")).json()
            assert (got["name"], got["retryCount"]) == (name, 2)
            jvms = _java_children(proc.pid)
            assert jvms, "no JVM under the command"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 60)
    assert code == 0
    assert not [pid for pid in jvms if _pid_alive(pid)], "the JVM outlived the command"


def _java_children(parent: int) -> list[int]:
    """Pids of java processes started under `parent` (the launcher gives them a session of
    their own, so the parent chain is what ties them to the command)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")[0]
            if cmd.endswith(b"java"):
                found.append(int(entry.name))
        except OSError:
            continue
    return [pid for pid in found if _parent_chain_has(pid, parent)]


def _parent_chain_has(pid: int, ancestor: int) -> bool:
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        if pid == ancestor:
            return True
    return False


def test_a_kafka_that_cannot_bind_reports_what_it_printed() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        kafka = ApacheKafka(port=taken.getsockname()[1], startup_timeout=60)
        with pytest.raises(BrokerError) as failure:
            kafka.start()
    message = str(failure.value)
    assert message.startswith("Apache Kafka "), message
    assert "Address already in use" in message, message
    assert kafka.process is None and kafka.base is None  # stopped and cleaned up


def test_too_old_java_is_named_with_what_was_found() -> None:
    with pytest.raises(BrokerError) as failure:
        artifacts.find_java(99)
    message = str(failure.value)
    assert "Java 99 or newer is needed; found " in message
    assert "JAVA_HOME" in message


def test_fetch_without_maven_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no mvn here
    with pytest.raises(BrokerError, match=r"apt-get install -y maven"):
        artifacts.conductor_jar()
    assert list((tmp_path / "cache").iterdir()) == []  # nothing half-written


def test_cache_lives_outside_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert artifacts.cache_dir() == Path.home() / ".cache" / "conductor-gateway"
    monkeypatch.setenv("GATEWAY_CACHE_DIR", "/srv/cache")
    assert artifacts.cache_dir() == Path("/srv/cache")

"""Shutdown with work that cannot finish: the grace period ends it, a second signal forces it,
and in both cases nothing is committed without its effect."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.daemon.conftest import committed_and_end, create_topic, producer, unique

pytestmark = pytest.mark.brokers


@pytest.fixture
async def black_hole() -> AsyncIterator[int]:
    """A 'Conductor' that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        for writer in held:
            writer.transport.abort()
        server.close()
        await server.wait_closed()


async def start_gateway(
    tmp_path: Path, kafka_bootstrap: str, conductor_port: int, grace: float
) -> tuple[asyncio.subprocess.Process, str, str]:
    topic, group = unique("orders"), unique("gw")
    await create_topic(kafka_bootstrap, topic, 1)
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"""
version: 1
rules:
  - name: start
    source: {{topic: {topic}}}
    start_workflow: {{name: never_answered, correlation_id: "${{body.id}}"}}
""")
    config = tmp_path / "gateway.yaml"
    config.write_text(
        json.dumps(
            {
                "kafka": {
                    "bootstrap_servers": kafka_bootstrap,
                    "group_id": group,
                    "enable_idempotence": False,
                },
                "conductor": {
                    "url": f"http://127.0.0.1:{conductor_port}/api",
                    "flavor": "oss",
                    "request_timeout": 60,
                    "max_retries": 0,
                },
                "store": {"sqlite_path": str(tmp_path / "gw.db")},
                "admin": {"port": 0},
                "rules_file": str(rules),
                "shutdown_grace_seconds": grace,
                "logging": {"format": "text"},
            }
        )
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "run",
        "--config",
        str(config),
        stderr=asyncio.subprocess.PIPE,
    )
    async with producer(kafka_bootstrap) as p:
        for i in range(5):
            await p.send_and_wait(topic, json.dumps({"id": f"e{i}"}).encode())
    return process, topic, group


async def wait_for_line(process: asyncio.subprocess.Process, text: str, timeout: float) -> str:
    assert process.stderr is not None
    seen = ""
    async with asyncio.timeout(timeout):
        while text not in seen:
            line = await process.stderr.readline()
            if not line:
                break
            seen += line.decode()
    return seen


async def test_grace_period_ends_stuck_work_without_committing_it(
    kafka_bootstrap: str, black_hole: int, tmp_path: Path
) -> None:
    process, topic, group = await start_gateway(tmp_path, kafka_bootstrap, black_hole, grace=2)
    try:
        await wait_for_line(process, "assigned", 30)
        await asyncio.sleep(2)  # the events are taken and their starts hang
        process.send_signal(signal.SIGTERM)
        began = time.monotonic()
        code = await asyncio.wait_for(process.wait(), 30)
        took = time.monotonic() - began
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 0
    assert 1.5 < took < 15, f"shutdown took {took:.1f}s with a 2s grace period"
    committed, end = await committed_and_end(kafka_bootstrap, group, topic, 1)
    assert end == {0: 5} and committed == {0: 0}  # unfinished work stays for redelivery


async def test_a_second_signal_exits_at_once(
    kafka_bootstrap: str, black_hole: int, tmp_path: Path
) -> None:
    process, topic, group = await start_gateway(tmp_path, kafka_bootstrap, black_hole, grace=60)
    try:
        await wait_for_line(process, "assigned", 30)
        await asyncio.sleep(2)
        process.send_signal(signal.SIGTERM)
        await wait_for_line(process, "draining", 10)
        process.send_signal(signal.SIGTERM)
        began = time.monotonic()
        code = await asyncio.wait_for(process.wait(), 10)
        took = time.monotonic() - began
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 130 and took < 5
    committed, _end = await committed_and_end(kafka_bootstrap, group, topic, 1)
    assert committed == {0: 0}

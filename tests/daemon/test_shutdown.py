"""Shutdown with work that cannot finish: the grace period ends it, a second signal forces it,
and in both cases nothing is committed without its effect."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.daemon.conftest import committed_and_end, create_topic, eventually, producer, unique

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Daemon:
    process: asyncio.subprocess.Process
    topic: str
    group: str
    log: Path  # the daemon's stderr, in a file so it can never block on a full pipe
    admin_port: int


@contextlib.asynccontextmanager
async def gateway_daemon(
    tmp_path: Path, kafka_bootstrap: str, conductor_port: int, grace: float
) -> AsyncIterator[Daemon]:
    """Five events on a fresh topic, then `gateway run` on them; killed if still running."""
    topic, group, admin_port = unique("orders"), unique("gw"), free_port()
    await create_topic(kafka_bootstrap, topic, 1)
    async with producer(kafka_bootstrap) as p:
        for i in range(5):
            await p.send_and_wait(topic, json.dumps({"id": f"e{i}"}).encode())
    config = write_config(tmp_path, kafka_bootstrap, topic, group, conductor_port, grace)
    config["admin"] = {"host": "127.0.0.1", "port": admin_port}
    (tmp_path / "gateway.yaml").write_text(json.dumps(config))
    log = tmp_path / "gateway.log"
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "run",
            "--config",
            str(tmp_path / "gateway.yaml"),
            stderr=stderr,
        )
    try:
        yield Daemon(process, topic, group, log, admin_port)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def write_config(
    tmp_path: Path, bootstrap: str, topic: str, group: str, conductor_port: int, grace: float
) -> dict[str, Any]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"""
version: 1
rules:
  - name: start
    source: {{topic: {topic}}}
    start_workflow: {{name: never_answered, correlation_id: "${{body.id}}"}}
""")
    return {
        "kafka": {
            "bootstrap_servers": bootstrap,
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
        "rules_file": str(rules),
        "shutdown_grace_seconds": grace,
        "logging": {"format": "text"},
    }


async def wait_for_line(daemon: Daemon, text: str, timeout: float) -> None:
    """Wait until the daemon logged `text`; fail if it exits first or the time is up."""
    deadline = time.monotonic() + timeout
    while text not in daemon.log.read_text(errors="replace"):
        assert daemon.process.returncode is None, (
            f"the gateway exited ({daemon.process.returncode}) before logging {text!r}:\n"
            + daemon.log.read_text(errors="replace")[-2000:]
        )
        assert time.monotonic() < deadline, (
            f"no {text!r} within {timeout}s:\n" + daemon.log.read_text(errors="replace")[-2000:]
        )
        await asyncio.sleep(0.1)


async def wait_in_flight(daemon: Daemon, count: int, timeout: float) -> None:
    """Wait until the admin endpoint reports `count` messages taken and not settled."""
    url = f"http://127.0.0.1:{daemon.admin_port}/metrics"
    async with httpx.AsyncClient(timeout=5) as http:

        async def taken() -> bool:
            assert daemon.process.returncode is None, daemon.log.read_text()[-2000:]
            try:
                text = (await http.get(url)).text
            except httpx.HTTPError:
                return False
            return f"gateway_in_flight {count}" in text.splitlines()

        await eventually(taken, timeout=timeout)


async def test_grace_period_ends_stuck_work_without_committing_it(
    kafka_bootstrap: str, black_hole: int, tmp_path: Path
) -> None:
    async with gateway_daemon(tmp_path, kafka_bootstrap, black_hole, grace=2) as daemon:
        await wait_in_flight(daemon, 5, 60)  # all five taken, their starts hanging
        daemon.process.send_signal(signal.SIGTERM)
        began = time.monotonic()
        code = await asyncio.wait_for(daemon.process.wait(), 60)
        took = time.monotonic() - began
    assert code == 0, daemon.log.read_text()[-2000:]
    # Far below the 60 s the hanging requests would take: the grace period cut them short.
    assert took < 40, f"shutdown took {took:.1f}s with a 2s grace period"
    committed, end = await committed_and_end(kafka_bootstrap, daemon.group, daemon.topic, 1)
    assert end == {0: 5} and committed == {0: 0}  # unfinished work stays for redelivery


async def test_a_second_signal_exits_at_once(
    kafka_bootstrap: str, black_hole: int, tmp_path: Path
) -> None:
    async with gateway_daemon(tmp_path, kafka_bootstrap, black_hole, grace=60) as daemon:
        await wait_in_flight(daemon, 5, 60)
        daemon.process.send_signal(signal.SIGTERM)
        await wait_for_line(daemon, "draining", 30)
        daemon.process.send_signal(signal.SIGTERM)
        began = time.monotonic()
        code = await asyncio.wait_for(daemon.process.wait(), 30)
        took = time.monotonic() - began
    # 128 + SIGTERM, the shell's convention for "killed by SIGTERM"; far below the 60 s grace
    # period the first signal started.
    assert code == 128 + signal.SIGTERM and took < 30, f"exit {code} after {took:.1f}s"
    committed, end = await committed_and_end(kafka_bootstrap, daemon.group, daemon.topic, 1)
    assert end == {0: 5} and committed == {0: 0}

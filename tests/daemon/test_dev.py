"""`gateway dev`, the README's first command: the whole stack comes up, works, and goes away."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import signal
import socket
import sys
from pathlib import Path

import httpx
import pytest

from tests.daemon.conftest import eventually

pytestmark = pytest.mark.brokers

ROOT = Path(__file__).resolve().parents[2]


async def read_banner(stream: asyncio.StreamReader, timeout: float) -> list[str]:
    lines: list[str] = []
    async with asyncio.timeout(timeout):
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError("gateway dev exited before its banner:\n" + "".join(lines))
            lines.append(line)
            if line.startswith("  curl"):
                return lines


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (the brokers run in sessions of their own)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The command name (field 2) may hold spaces; the parent pid follows its ')'.
            if int(stat.read_text().rpartition(")")[2].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


async def stop_tree(process: asyncio.subprocess.Process) -> None:
    """Stop `gateway dev` after a failure: Ctrl-C first, then kill it and the brokers' groups."""
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGINT)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), 60)
        return
    for group in [*children(process.pid), process.pid]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
    await process.wait()


def banner_ports(banner: str) -> dict[str, int]:
    found = {
        "kafka": re.search(r"Kafka \(Tansu\)\s+127\.0\.0\.1:(\d+)", banner),
        "rabbitmq": re.search(r"RabbitMQ\s+amqp://guest:\*\*\*@127\.0\.0\.1:(\d+)/", banner),
        "conductor": re.search(r"Conductor\s+http://127\.0\.0\.1:(\d+)/", banner),
        "admin": re.search(r"admin\s+http://127\.0\.0\.1:(\d+)/", banner),
    }
    assert all(found.values()), banner
    return {name: int(match.group(1)) for name, match in found.items() if match}


async def test_gateway_dev_runs_the_demo_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    env = {**os.environ, "GATEWAY_DEV_DIR": str(tmp_path), "GATEWAY_DEV_ANY_PORT": "1"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "dev",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    assert process.stdout is not None
    try:
        banner = "".join(await read_banner(process.stdout, 120))
        draining = asyncio.create_task(process.stdout.read())  # the pipe must never fill
        assert "guest:guest" not in banner, "the banner shows the RabbitMQ password"
        ports = banner_ports(banner)
        sends = [line.strip() for line in banner.splitlines() if " send " in line]
        assert len(sends) == 3, banner
        # The order, then its payment at once: the payment rule retries (on_missing: retry)
        # until the order's workflow exists and waits for it.
        for command in sends[:2]:
            sent = await asyncio.create_subprocess_exec(*shlex.split(command), cwd=ROOT)
            assert await asyncio.wait_for(sent.wait(), 60) == 0
        url = (
            f"http://127.0.0.1:{ports['conductor']}/api/workflow/order-fulfilment/correlated/o-1001"
        )
        found: list[dict[str, object]] = []
        async with httpx.AsyncClient() as http:

            async def completed() -> bool:
                found[:] = (await http.get(url, params={"includeClosed": "true"})).json()
                return bool(found) and found[0]["status"] == "COMPLETED"

            with contextlib.suppress(AssertionError):
                await eventually(completed, timeout=60)
        assert found and found[0]["status"] == "COMPLETED", json.dumps(found)[:500]
        brokers = children(process.pid)
        assert len(brokers) >= 2, f"expected Tansu and RabbitMQ children, found {brokers}"
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 90) == 0
        await draining
    finally:
        await stop_tree(process)
    still_open = [name for name, port in ports.items() if port_open(port)]
    assert not still_open, f"still listening after Ctrl-C: {still_open}"
    alive = [pid for pid in brokers if Path(f"/proc/{pid}").exists()]
    assert not alive, f"children of gateway dev still running: {alive}"

"""`gateway dev` as a user runs it: a child process in its own session, its banner, a clean stop.

Shared by the tests that start the whole dev stack (tests/daemon/test_dev.py,
tests/interop/test_librdkafka.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


async def start_dev(*arguments: str, dev_dir: Path) -> asyncio.subprocess.Process:
    """`gateway dev ARGUMENTS` on free ports, its settings in `dev_dir`, its banner on stdout.

    The caller reads the banner (`read_banner`), keeps draining stdout, and ends with
    `stop_tree` (in a `finally`)."""
    env = {**os.environ, "GATEWAY_DEV_DIR": str(dev_dir), "GATEWAY_DEV_ANY_PORT": "1"}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "dev",
        *arguments,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )


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


def banner_ports(banner: str, kafka: str = "Tansu", *, amqp: bool = True) -> dict[str, int]:
    """The ports the banner shows: kafka (its name in the banner: Tansu or Apache), rabbitmq
    (unless `amqp` is False: `--no-amqp`), conductor and admin."""
    found = {
        "kafka": re.search(rf"Kafka \({kafka}\)\s+127\.0\.0\.1:(\d+)", banner),
        "conductor": re.search(r"Conductor\s+http://127\.0\.0\.1:(\d+)/", banner),
        "admin": re.search(r"admin\s+http://127\.0\.0\.1:(\d+)/", banner),
    }
    if amqp:
        rabbitmq = r"RabbitMQ\s+amqp://guest:\*\*\*@127\.0\.0\.1:(\d+)/"
        found["rabbitmq"] = re.search(rabbitmq, banner)
    assert all(found.values()), banner
    return {name: int(match.group(1)) for name, match in found.items() if match}

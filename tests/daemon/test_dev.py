"""`gateway dev`, the README's first command: the whole stack comes up, works, and goes away."""

from __future__ import annotations

import asyncio
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
    )
    assert process.stdout is not None
    try:
        banner = "".join(await read_banner(process.stdout, 120))
        conductor = re.search(r"Conductor\s+(http://\S+)", banner)
        kafka = re.search(r"Kafka \(Tansu\)\s+127\.0\.0\.1:(\d+)", banner)
        assert conductor and kafka, banner
        sends = [line.strip() for line in banner.splitlines() if " send " in line]
        assert len(sends) == 3, banner
        for command in sends[:2]:  # the order, then its payment
            sent = await asyncio.create_subprocess_exec(*shlex.split(command), cwd=ROOT)
            assert await asyncio.wait_for(sent.wait(), 60) == 0
            await asyncio.sleep(1.0)
        url = f"{conductor.group(1)}/workflow/order-fulfilment/correlated/o-1001"
        async with httpx.AsyncClient() as http:
            for _ in range(100):
                found = (await http.get(url, params={"includeClosed": "true"})).json()
                if found and found[0]["status"] == "COMPLETED":
                    break
                await asyncio.sleep(0.2)
        assert found and found[0]["status"] == "COMPLETED", json.dumps(found)[:500]
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 90) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert not port_open(int(kafka.group(1))), "Tansu is still running"

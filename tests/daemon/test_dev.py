"""`gateway dev`, the README's first command: the whole stack comes up, works, and goes away; on
the light defaults (dev server, Tansu) and once on the real servers (Conductor OSS, Apache
Kafka)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import signal
import sys
from pathlib import Path

import httpx
import pytest

from tests.daemon.conftest import eventually, read_topic
from tests.devstack import ROOT, banner_ports, children, port_open, read_banner, stop_tree

pytestmark = pytest.mark.brokers


STACKS = {
    # name: (arguments, the banner's Kafka name, seconds to the banner)
    "light": ([], "Tansu", 120),
    "real": (["--conductor", "real", "--kafka", "apache"], "Apache", 300),
}


@pytest.mark.parametrize("stack", list(STACKS))
async def test_gateway_dev_runs_the_demo_and_stops_on_ctrl_c(tmp_path: Path, stack: str) -> None:
    arguments, kafka_name, banner_timeout = STACKS[stack]
    env = {**os.environ, "GATEWAY_DEV_DIR": str(tmp_path), "GATEWAY_DEV_ANY_PORT": "1"}
    process = await asyncio.create_subprocess_exec(
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
    assert process.stdout is not None
    try:
        banner = "".join(await read_banner(process.stdout, banner_timeout))
        draining = asyncio.create_task(process.stdout.read())  # the pipe must never fill
        assert "guest:guest" not in banner, "the banner shows the RabbitMQ password"
        ports = banner_ports(banner, kafka_name)
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
        # The completion CloudEvent, as a consumer of `order-status` reads it.
        [record] = await read_topic(f"127.0.0.1:{ports['kafka']}", "order-status", 1, 60)
        event = json.loads(record.value)
        assert event["type"] == "io.conductor.workflow.completed", event
        assert event["subject"] == found[0]["workflowId"] == record.key.decode()
        assert event["data"]["correlationId"] == "o-1001"
        brokers = children(process.pid)
        assert len(brokers) >= 2, f"expected the brokers as children, found {brokers}"
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 90) == 0
        await draining
    finally:
        await stop_tree(process)
    still_open = [name for name, port in ports.items() if port_open(port)]
    assert not still_open, f"still listening after Ctrl-C: {still_open}"
    alive = [pid for pid in brokers if Path(f"/proc/{pid}").exists()]
    assert not alive, f"children of gateway dev still running: {alive}"

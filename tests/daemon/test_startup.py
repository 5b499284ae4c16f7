"""`gateway run` under an orchestrator: probes from the first second, a dependency down at
start reported and recovered from, SIGTERM at any moment of start-up exits 0 and leaves the
consumer group, and DEBUG logs without event bodies or SQL parameters."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from gateway.conductor.client import ConductorClient
from gateway.devserver.server import DevServer
from tests.daemon.conftest import create_topic, eventually, producer, unique, wait_workflow
from tests.daemon.process import GatewayProcess, gateway_run
from tests.proxy import TcpProxy, proxied_tansu
from tests.store.conftest import postgres_dsn, postgres_server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.brokers


def start_rules(topic: str, workflow: str) -> str:
    return f"""
version: 1
rules:
  - name: start
    source: {{topic: {topic}}}
    start_workflow: {{name: {workflow}, correlation_id: "${{body.id}}"}}
"""


def kafka_config(bootstrap: str, group: str, **extra: object) -> dict[str, object]:
    return {"bootstrap_servers": bootstrap, "group_id": group, "enable_idempotence": False, **extra}


async def first_answers(gateway: GatewayProcess, timeout: float) -> tuple[float, int, int]:
    """Seconds from spawn to the first /healthz answer, and both probes' status then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gateway.assert_running()
        health = await gateway.get("/healthz")
        if health is not None:
            took = time.monotonic() - gateway.started
            ready = await gateway.get("/readyz")
            assert ready is not None
            return took, health.status_code, ready.status_code
        await asyncio.sleep(0.05)
    raise AssertionError(f"no /healthz answer within {timeout}s\n{gateway.tail()}")


@pytest.mark.slow
async def test_dependencies_down_at_start_are_reported_then_recovered(
    devserver: DevServer, tmp_path: Path
) -> None:
    topic, workflow = unique("orders"), unique("flow")
    async with (
        TcpProxy("127.0.0.1", devserver.port) as conductor_proxy,
        proxied_tansu() as (kafka_proxy, bootstrap),
    ):
        await create_topic(bootstrap, topic, 1)
        await conductor_proxy.cut()
        await kafka_proxy.cut()
        config = {
            "kafka": kafka_config(bootstrap, unique("gw"), session_timeout_ms=6000),
            "conductor": {"url": f"http://127.0.0.1:{conductor_proxy.port}/api", "max_retries": 0},
        }
        async with gateway_run(tmp_path, start_rules(topic, workflow), config) as gateway:
            took, health, ready = await first_answers(gateway, 10)
            # 0.7-1.5 s on a loaded 2-core machine, all of it the interpreter's imports; the
            # bound only catches an endpoint that waits for a dependency again.
            assert took < 5, f"first /healthz answer {took:.2f}s after spawn"
            assert (health, ready) == (200, 503)
            reasons = await gateway.wait_reason("conductor: not reachable at", 20)
            assert "check conductor.url" in reasons[0]
            assert (await gateway.get("/healthz")).status_code == 200  # type: ignore[union-attr]

            await conductor_proxy.restore()
            reasons = await gateway.wait_reason("kafka: cannot connect to", 30)
            assert not any(r.startswith("conductor") for r in reasons), reasons
            assert f"127.0.0.1:{kafka_proxy.port}" in reasons[0]
            assert "kafka.bootstrap_servers" in reasons[0]
            assert (await gateway.get("/healthz")).status_code == 200  # type: ignore[union-attr]

            await kafka_proxy.restore()
            await gateway.wait_ready(45)
            log = gateway.text()
            code = await gateway.stop(signal.SIGTERM)
    assert code == 0, gateway.tail()
    # Logged once when it appeared (then at most every 30 s), not once per attempt.
    assert log.count("WARNING gateway.readiness: not ready: conductor: not reachable") == 1, log
    assert log.count("WARNING gateway.readiness: not ready: kafka: cannot connect") == 1, log


def through(url: str, port: int) -> str:
    """`url` with its host and port replaced by a loopback proxy's."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    return parts._replace(netloc=f"{credentials}@127.0.0.1:{port}").geturl()


@pytest.mark.slow
async def test_store_and_rabbitmq_down_at_start_are_reported_then_recovered(
    devserver: DevServer,
    amqp_url: str,
    postgres_dsn: str,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    queue = unique("payments")
    password = urlsplit(amqp_url).password or "guest"
    async with (
        TcpProxy("127.0.0.1", urlsplit(postgres_dsn).port or 5432) as store_proxy,
        TcpProxy("127.0.0.1", urlsplit(amqp_url).port or 5672) as amqp_proxy,
    ):
        await store_proxy.cut()
        await amqp_proxy.cut()
        config = {
            "amqp": {"url": through(amqp_url, amqp_proxy.port)},
            "store": {"postgres_dsn": through(postgres_dsn, store_proxy.port)},
            "conductor": {"url": devserver.url, "flavor": "oss"},
        }
        rules = f"""
version: 1
rules:
  - name: pay
    source: {{queue: {queue}}}
    start_workflow: {{name: flow}}
"""
        async with gateway_run(tmp_path, rules, config) as gateway:
            await gateway.wait_reason("store: store.postgres_dsn: cannot connect", 20)
            assert (await gateway.get("/healthz")).status_code == 200  # type: ignore[union-attr]
            await store_proxy.restore()
            reasons = await gateway.wait_reason("amqp: cannot connect to 127.0.0.1:", 30)
            assert not any(r.startswith("store") for r in reasons), reasons
            assert "check amqp.url" in reasons[0] and password not in reasons[0]
            await amqp_proxy.restore()
            await gateway.wait_ready(45)
            code = await gateway.stop(signal.SIGTERM)
    assert code == 0, gateway.tail()


@pytest.mark.parametrize(
    ("after", "signum"),
    [(0.2, signal.SIGTERM), (1.0, signal.SIGTERM), (1.0, signal.SIGINT)],
    ids=["SIGTERM-0.2s", "SIGTERM-1s", "SIGINT-1s"],
)
async def test_a_signal_early_in_start_up_exits_0(
    kafka_bootstrap: str, devserver: DevServer, tmp_path: Path, after: float, signum: int
) -> None:
    config = {
        "kafka": kafka_config(kafka_bootstrap, unique("gw")),
        "conductor": {"url": devserver.url, "flavor": "oss"},
    }
    async with gateway_run(tmp_path, start_rules(unique("orders"), "flow"), config) as gateway:
        await asyncio.sleep(max(0.0, after - (time.monotonic() - gateway.started)))
        code = await gateway.stop(signum, timeout=30)
    assert code == 0, gateway.tail()
    assert "Traceback" not in gateway.text(), gateway.tail()


@pytest.mark.slow
async def test_sigterm_during_partition_assignment_exits_0(
    kafka_bootstrap: str, devserver: DevServer, tmp_path: Path
) -> None:
    """Tansu takes about 15 s to assign a new group's partitions: SIGTERM in that window."""
    topic, group = unique("orders"), unique("gw")
    await create_topic(kafka_bootstrap, topic, 2)
    config = {
        "kafka": kafka_config(kafka_bootstrap, group),
        "conductor": {"url": devserver.url, "flavor": "oss"},
    }
    async with gateway_run(tmp_path, start_rules(topic, "flow"), config) as gateway:
        await gateway.wait_reason("kafka: waiting for partition assignment", 30)
        code = await gateway.stop(signal.SIGTERM, timeout=40)
    assert code == 0, gateway.tail()
    assert "stopped during start-up: closed what was opened" in gateway.text()


@pytest.mark.slow
async def test_next_member_is_assigned_without_waiting_a_session_timeout(
    apache_kafka_bootstrap: str, devserver: DevServer, conductor: ConductorClient, tmp_path: Path
) -> None:
    """A member stopped by SIGTERM leaves the group, so the next one is assigned at once
    rather than after the first one's session timeout (30 s here). On Apache Kafka: Tansu
    (0.4) takes about 55 s to hand the partitions over even after a clean leave (measured).
    The second member runs at DEBUG: its log carries no event body and no SQL parameters."""
    topic, group, workflow = unique("orders"), unique("gw"), unique("flow")
    await create_topic(apache_kafka_bootstrap, topic, 2)
    await conductor.register_workflow_def(wait_workflow(workflow))
    config = {
        "kafka": {
            "bootstrap_servers": apache_kafka_bootstrap,
            "group_id": group,
            "session_timeout_ms": 30_000,
        },
        "conductor": {"url": devserver.url, "flavor": "oss"},
    }
    rules = start_rules(topic, workflow)
    async with gateway_run(tmp_path, rules, config, name="first") as first:
        await first.wait_ready(60)
        code = await first.stop(signal.SIGTERM, timeout=30)
    assert code == 0, first.tail()

    marker = "body-marker-" + unique("x")
    debug = {**config, "logging": {"format": "text", "level": "DEBUG"}}
    async with gateway_run(tmp_path, rules, debug, name="second") as second:
        took = await second.wait_ready(60)
        print(f"second member ready {took:.1f}s after spawn")
        assert took < 20, f"assigned after {took:.1f}s: the first member's session was awaited"
        async with producer(apache_kafka_bootstrap, idempotence=True) as p:
            await p.send_and_wait(topic, json.dumps({"id": marker, "note": marker}).encode())

        async def started() -> bool:
            result = await conductor.search(query=f"workflowType = {workflow}", size=10)
            return len(result.results) == 1

        await eventually(started, timeout=30)
        code = await second.stop(signal.SIGTERM, timeout=30)
    log = second.text()
    assert code == 0, second.tail()
    assert "assigned" in log
    assert marker not in log
    for sql in ("INSERT", "SELECT", "UPDATE"):
        assert sql not in log, f"{sql} in a DEBUG log:\n{log[-2000:]}"

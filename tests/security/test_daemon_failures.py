"""`gateway run` with each secured-connection mistake stays up and says why: within 10 s of its
admin endpoint's first answer, /readyz answers 503 with the component and the one-line cause;
the same cause is logged at WARNING, /healthz answers 200, readiness stays false, and no
password is in any log line. The processes of one broker's cases run side by side."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.devserver.brokers import RabbitMQ, free_port
from gateway.devserver.realservers import ApacheKafka
from gateway.devserver.server import DevServer
from tests.security.cases import AMQP_CASES, KAFKA_CASES, Case, amqp_case, kafka_case
from tests.security.conftest import TlsProxy, no_secret_in, server_context
from tests.tlsca import Authority

pytestmark = [pytest.mark.brokers, pytest.mark.slow]

REPORT_WITHIN = 10.0
START_WITHIN = 30.0


@dataclass
class Daemon:
    name: str
    case: Case
    admin_port: int
    process: asyncio.subprocess.Process
    started: float
    log: bytes = b""


@contextlib.asynccontextmanager
async def daemons(
    cases: dict[str, Case],
    component: str,
    conductor: DevServer | None,
    ca: Authority,
    tmp_path: Path,
) -> AsyncIterator[list[Daemon]]:
    running: list[Daemon] = []
    try:
        for name, case in cases.items():
            running.append(await start(name, case, component, conductor, ca, tmp_path / name))
        yield running
    finally:
        for daemon in running:
            if daemon.process.returncode is None:
                daemon.process.send_signal(signal.SIGTERM)
        for daemon in running:
            out, _ = await asyncio.wait_for(daemon.process.communicate(), 30)
            daemon.log = out


async def start(
    name: str, case: Case, component: str, conductor: DevServer | None, ca: Authority, base: Path
) -> Daemon:
    base.mkdir()
    source = "{topic: orders}" if component == "kafka" else "{queue: orders}"
    (base / "rules.yaml").write_text(
        f"version: 1\nrules:\n  - name: r\n    source: {source}\n"
        "    start_workflow: {name: flow}\n"
    )
    admin_port = free_port()
    settings: dict[str, Any] = {
        "conductor": {"url": conductor.url if conductor else "", "ca_file": str(ca.ca)},
        **case.sections,
        "store": {"sqlite_path": str(base / "gw.db")},
        "admin": {"port": admin_port},
        "rules_file": str(base / "rules.yaml"),
        "logging": {"format": "text", "level": "DEBUG"},
    }
    (base / "gateway.yaml").write_text(json.dumps(settings))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "run", "--config", str(base / "gateway.yaml"),
        env=case.environment(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    return Daemon(name, case, admin_port, process, time.monotonic())


async def reported(daemon: Daemon, component: str, http: httpx.AsyncClient) -> list[str]:
    """/readyz's reasons once they name `component` with the expected cause; fails if that takes
    more than 10 s from the process's first answer (the interpreter's start-up is not counted:
    on a busy two-core machine several starting side by side take seconds)."""
    url, up = f"http://127.0.0.1:{daemon.admin_port}", None
    while True:
        now = time.monotonic()
        with contextlib.suppress(httpx.TransportError):
            answer = await http.get(f"{url}/readyz")
            up = up or now
            reasons: list[str] = answer.json()["reasons"]
            if any(r.startswith(f"{component}: ") and daemon.case.expected in r for r in reasons):
                assert answer.status_code == 503
                return reasons
        assert now - daemon.started < START_WITHIN, f"{daemon.name}: no answer on /readyz"
        assert up is None or now - up < REPORT_WITHIN, f"{daemon.name}: not reported in time"
        assert daemon.process.returncode is None, f"{daemon.name}: the gateway exited"
        await asyncio.sleep(0.2)


async def check_all(running: list[Daemon], component: str) -> None:
    async with httpx.AsyncClient(timeout=2) as http:
        await asyncio.gather(*(reported(d, component, http) for d in running))
        await asyncio.sleep(1.0)  # a retry or two later: still not ready, still alive
        for daemon in running:
            url = f"http://127.0.0.1:{daemon.admin_port}"
            assert (await http.get(f"{url}/readyz")).status_code == 503, daemon.name
            assert (await http.get(f"{url}/healthz")).status_code == 200, daemon.name


def check_logs(running: list[Daemon], component: str) -> None:
    for daemon in running:
        text = daemon.log.decode()
        warnings = [line for line in text.splitlines() if "WARNING" in line]
        assert any(daemon.case.expected in line for line in warnings), f"{daemon.name}:\n{text}"
        assert daemon.process.returncode == 0, f"{daemon.name}:\n{text[-2000:]}"
        no_secret_in(text)


async def test_kafka_mistakes_keep_the_gateway_unready_and_say_why(
    secured_kafka: ApacheKafka,
    tls_ca: Authority,
    bad_certificates: dict[str, TlsProxy],
    tls_devserver: DevServer,
    tmp_path: Path,
) -> None:
    cases = {n: kafka_case(n, secured_kafka, tls_ca, bad_certificates) for n in KAFKA_CASES}
    async with daemons(cases, "kafka", tls_devserver, tls_ca, tmp_path) as running:
        await check_all(running, "kafka")
    check_logs(running, "kafka")


async def test_amqp_mistakes_keep_the_gateway_unready_and_say_why(
    secured_rabbit: RabbitMQ,
    tls_ca: Authority,
    bad_certificates: dict[str, TlsProxy],
    tls_devserver: DevServer,
    tmp_path: Path,
) -> None:
    cases = {n: amqp_case(n, secured_rabbit, tls_ca, bad_certificates) for n in AMQP_CASES}
    async with daemons(cases, "amqp", tls_devserver, tls_ca, tmp_path) as running:
        await check_all(running, "amqp")
    check_logs(running, "amqp")


CONDUCTOR_CASES = {
    # name: (the server's certificate, the URL's scheme, conductor.ca_file, the cause says)
    "unknown_ca": ("server", "https", "wrong_ca", "unknown CA (not in conductor.ca_file"),
    "expired_certificate": ("expired", "https", "ca", "has expired"),
    "hostname_mismatch": ("other_host", "https", "ca", "is not valid for 127.0.0.1"),
    "plaintext_to_tls_port": ("server", "http", "ca", "use https:// in conductor.url"),
    "tls_to_plaintext_port": (None, "https", "ca", "use http:// in conductor.url"),
}


async def test_conductor_mistakes_keep_the_gateway_unready_and_say_why(
    tls_ca: Authority, tmp_path: Path
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        cases: dict[str, Case] = {}
        for name, (certificate, scheme, ca, expected) in CONDUCTOR_CASES.items():
            context = server_context(getattr(tls_ca, certificate)) if certificate else None
            server = await stack.enter_async_context(DevServer(port=0, ssl_context=context))
            conductor = {
                "url": f"{scheme}://127.0.0.1:{server.port}/api",
                "ca_file": str(getattr(tls_ca, ca)),
            }
            cases[name] = Case({"conductor": conductor}, {}, expected, "")
        async with daemons(cases, "kafka", None, tls_ca, tmp_path) as running:
            await check_all(running, "conductor")
        check_logs(running, "conductor")

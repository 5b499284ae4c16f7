"""Each secured-connection mistake makes the one-shot commands (`gateway dev send`, and
`gateway conductor ...` for Conductor) exit non-zero at once with one line that says what is
wrong and which setting fixes it, and never prints a password."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from gateway.devserver.brokers import RabbitMQ
from gateway.devserver.realservers import ApacheKafka
from gateway.devserver.server import DevServer
from tests.messaging import declare_queue, new_topic
from tests.security.cases import AMQP_CASES, KAFKA_CASES, Case, amqp_case, kafka_case
from tests.security.conftest import (
    KAFKA_PASSWORD,
    TlsProxy,
    amqp_tls,
    kafka_sasl,
    no_secret_in,
    run_gateway,
    server_context,
)
from tests.tlsca import Authority

pytestmark = pytest.mark.brokers


async def send_fails(name: str, case: Case, base: Path) -> str:
    base.mkdir()
    config = base / "gateway.yaml"
    config.write_text(json.dumps(case.sections))
    code, out, err = await run_gateway(
        "dev", "send", "--config", str(config), case.destination, "{}",
        env=case.environment(), timeout=30,
    )  # fmt: skip
    # The client libraries may log the raw error first; the command's own error is one line.
    lines = [line for line in err.splitlines() if line.startswith("gateway: error: ")]
    assert code != 0 and len(lines) == 1, f"{name}: {err}"
    no_secret_in(out + err)
    return lines[0]


async def each_fails_saying_why(cases: dict[str, Case], tmp_path: Path) -> None:
    """All cases side by side (each a `gateway dev send` process); each error names its fix."""
    lines = await asyncio.gather(*(send_fails(n, c, tmp_path / n) for n, c in cases.items()))
    wrong = {
        name: line
        for (name, case), line in zip(cases.items(), lines, strict=True)
        if case.expected not in line
    }
    assert not wrong, wrong


async def test_kafka_mistakes_are_one_line_naming_the_fix(
    secured_kafka: ApacheKafka,
    tls_ca: Authority,
    bad_certificates: dict[str, TlsProxy],
    tmp_path: Path,
) -> None:
    cases = {n: kafka_case(n, secured_kafka, tls_ca, bad_certificates) for n in KAFKA_CASES}
    await each_fails_saying_why(cases, tmp_path)


async def test_amqp_mistakes_are_one_line_naming_the_fix(
    secured_rabbit: RabbitMQ,
    tls_ca: Authority,
    bad_certificates: dict[str, TlsProxy],
    tmp_path: Path,
) -> None:
    cases = {n: amqp_case(n, secured_rabbit, tls_ca, bad_certificates) for n in AMQP_CASES}
    await each_fails_saying_why(cases, tmp_path)


@pytest.mark.parametrize(
    ("certificate", "scheme", "ca", "expected"),
    [
        ("server", "https", "wrong_ca", "unknown CA (not in conductor.ca_file"),
        ("expired", "https", "ca", "has expired"),
        ("other_host", "https", "ca", "is not valid for 127.0.0.1"),
        ("server", "http", "ca", "use https:// in conductor.url"),
        (None, "https", "ca", "use http:// in conductor.url"),
    ],
)
async def test_conductor_cli_mistake_is_one_line_naming_the_fix(
    certificate: str | None, scheme: str, ca: str, expected: str, tls_ca: Authority
) -> None:
    context = server_context(getattr(tls_ca, certificate)) if certificate else None
    async with DevServer(port=0, ssl_context=context) as server:
        env = {
            **os.environ,
            "GATEWAY_CONDUCTOR__URL": f"{scheme}://127.0.0.1:{server.port}/api",
            "GATEWAY_CONDUCTOR__CA_FILE": str(getattr(tls_ca, ca)),
            "GATEWAY_CONDUCTOR__MAX_RETRIES": "1",
            "GATEWAY_CONDUCTOR__FLAVOR": "oss",
        }
        code, _out, err = await run_gateway("conductor", "status", "wf-1", env=env, timeout=30)
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1, err
    assert expected in lines[0]


async def test_the_right_settings_send(
    secured_kafka: ApacheKafka, secured_rabbit: RabbitMQ, tls_ca: Authority, tmp_path: Path
) -> None:
    """The cases above fail because of their one mistake: without it, the same send works."""
    topic = await new_topic(secured_kafka.bootstrap)
    queue = await declare_queue(secured_rabbit.url)
    config = tmp_path / "gateway.yaml"
    sections = {"kafka": kafka_sasl(secured_kafka, tls_ca), "amqp": amqp_tls(tls_ca)}
    config.write_text(json.dumps(sections))
    env = {**os.environ, "GATEWAY_KAFKA__SASL_PASSWORD": KAFKA_PASSWORD}
    env["GATEWAY_AMQP__URL"] = secured_rabbit.tls_url
    for destination in (f"kafka:{topic}", f"amqp:{queue}"):
        code, out, err = await run_gateway(
            "dev", "send", "--config", str(config), destination, "{}", env=env
        )
        assert code == 0 and out.strip() == f"sent to {destination}", err
        no_secret_in(out + err)

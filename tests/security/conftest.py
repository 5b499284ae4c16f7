"""Secured servers for the security tests, each started once per session: a test CA, Apache
Kafka with SASL_SSL (SCRAM-SHA-512) and mutual-TLS listeners, RabbitMQ with a TLS listener
that requires client certificates, and the Conductor dev server serving https.

The passwords are random per run, so a test can look for them in every log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import yarl

from gateway.devserver.brokers import RabbitMQ, RabbitTls
from gateway.devserver.realservers import ApacheKafka, KafkaTls
from gateway.devserver.server import DevServer
from tests.conftest import _serve
from tests.proxy import TcpProxy
from tests.tlsca import Authority

KAFKA_USER = "gateway"
KAFKA_PASSWORD = "kafka-" + secrets.token_hex(8)
AMQP_USER = "gateway"
AMQP_PASSWORD = "amqp-" + secrets.token_hex(8)


@pytest.fixture(scope="session")
def tls_ca(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return Authority.create(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="session")
def secured_kafka(tls_ca: Authority) -> Iterator[ApacheKafka]:
    """PLAINTEXT (for the tests' own setup), SASL_SSL and mutual-TLS listeners."""
    tls = KafkaTls(tls_ca.server.bundle(), tls_ca.ca, {KAFKA_USER: KAFKA_PASSWORD})
    with _serve(ApacheKafka(tls=tls), "Apache Kafka with TLS listeners") as kafka:
        yield kafka


@pytest.fixture(scope="session")
def secured_rabbit(tls_ca: Authority) -> Iterator[RabbitMQ]:
    tls = RabbitTls(tls_ca.ca, tls_ca.server.cert, tls_ca.server.key, AMQP_USER, AMQP_PASSWORD)
    with _serve(RabbitMQ(tls=tls), "RabbitMQ with a TLS listener") as rabbit:
        yield rabbit


def server_context(pair: Any) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pair.cert, pair.key)
    return context


@pytest.fixture
async def tls_devserver(tls_ca: Authority) -> AsyncIterator[DevServer]:
    async with DevServer(port=0, ssl_context=server_context(tls_ca.server)) as server:
        yield server


def kafka_sasl(kafka: ApacheKafka, ca: Authority, **extra: Any) -> dict[str, Any]:
    """The `kafka` settings section for the SASL_SSL listener (password from the environment
    in the subprocess tests; here for in-process use)."""
    return {
        "bootstrap_servers": kafka.sasl_ssl_bootstrap,
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": KAFKA_USER,
        "ssl_cafile": str(ca.ca),
        **extra,
    }


def kafka_mtls(kafka: ApacheKafka, ca: Authority, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap_servers": kafka.mtls_bootstrap,
        "security_protocol": "SSL",
        "ssl_cafile": str(ca.ca),
        "ssl_certfile": str(ca.client.cert),
        "ssl_keyfile": str(ca.client.key),
        **extra,
    }


def amqp_tls(ca: Authority) -> dict[str, Any]:
    """The `amqp` section without the URL (it holds the password: GATEWAY_AMQP__URL)."""
    return {
        "ssl_cafile": str(ca.ca),
        "ssl_certfile": str(ca.client.cert),
        "ssl_keyfile": str(ca.client.key),
    }


def no_secret_in(text: str) -> None:
    for secret in (KAFKA_PASSWORD, AMQP_PASSWORD):
        assert secret not in text, "a password was logged"


async def run_gateway(*argv: str, env: dict[str, str], timeout: float = 60) -> tuple[int, str, str]:
    """`python -m gateway ARGV...` to its end: (exit status, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", *argv, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


class TlsProxy(TcpProxy):
    """A TLS front (with the certificate of `context`) for a plaintext port of a real server."""

    def __init__(self, target_port: int, context: ssl.SSLContext) -> None:
        super().__init__("127.0.0.1", target_port)
        self.context = context

    async def restore(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, ssl=self.context
        )
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
async def bad_certificates(
    tls_ca: Authority, secured_kafka: ApacheKafka, secured_rabbit: RabbitMQ
) -> AsyncIterator[dict[str, TlsProxy]]:
    """The brokers behind an expired certificate and one for another host name:
    `kafka-expired`, `kafka-other-host`, `amqp-expired`, `amqp-other-host`."""
    async with contextlib.AsyncExitStack() as stack:
        proxies = {}
        for broker, port in (("kafka", secured_kafka.port), ("amqp", secured_rabbit.port)):
            for kind, pair in (("expired", tls_ca.expired), ("other-host", tls_ca.other_host)):
                proxy = TlsProxy(port, server_context(pair))
                proxies[f"{broker}-{kind}"] = await stack.enter_async_context(proxy)
        yield proxies


@pytest.fixture
async def https_conductor(request: pytest.FixtureRequest, tls_ca: Authority) -> AsyncIterator[str]:
    """An https Conductor's API URL: `dev` (parameter), the dev server serving TLS itself, or
    `real`, the run's Conductor OSS behind a TLS front the test starts (as an ingress would
    terminate TLS for it)."""
    if request.param == "dev":
        async with DevServer(port=0, ssl_context=server_context(tls_ca.server)) as server:
            yield server.url
        return
    port = yarl.URL(request.getfixturevalue("conductor_oss_url")).port
    assert port is not None
    async with TlsProxy(port, server_context(tls_ca.server)) as proxy:
        yield f"https://127.0.0.1:{proxy.port}/api"

"""Shared test harness: real servers, started once per test run on free loopback ports.

Session fixtures: `kafka_bootstrap` (Tansu, the light default), `apache_kafka_bootstrap`
(Apache Kafka in KRaft mode), `amqp_url` (RabbitMQ) and `conductor_oss_url` (the real Conductor
OSS, SQLite-backed). Each starts only when a test asks for it. A server that cannot start fails
every test that needs it with the server's own explanation; these tests are never silently
skipped. Everything is stopped, and its temporary directory removed, at the end.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, settings

from gateway.devserver.brokers import BrokerError, RabbitMQ, ServerProcess, Tansu
from gateway.devserver.realservers import ApacheKafka, ConductorOSS

# The machine is small and shared: judge properties by their examples, not by how fast
# hypothesis could generate them.
settings.register_profile(
    "gateway", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("gateway")

S = TypeVar("S", bound=ServerProcess)


@contextlib.contextmanager
def _serve(broker: S, name: str) -> Iterator[S]:
    try:
        broker.start()
    except BrokerError as exc:
        pytest.fail(f"cannot start {name}: {exc}", pytrace=False)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    with _serve(Tansu(), "the Tansu Kafka broker") as broker:
        yield broker.bootstrap


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    with _serve(RabbitMQ(), "RabbitMQ") as broker:
        yield broker.url


@pytest.fixture(scope="session")
def apache_kafka_bootstrap() -> Iterator[str]:
    with _serve(ApacheKafka(), "Apache Kafka") as broker:
        yield broker.bootstrap


@pytest.fixture(scope="session")
def conductor_oss_url() -> Iterator[str]:
    """The real Conductor OSS's API base URL (…/api). One server for the whole run: tests use
    unique workflow names or ids, as they would on a shared server."""
    with _serve(ConductorOSS(), "the real Conductor OSS") as server:
        yield server.url

"""Shared test harness: real brokers, started once per test run on free loopback ports.

`kafka_bootstrap` (Tansu) and `amqp_url` (RabbitMQ) are session fixtures. A broker that cannot
start fails every test that needs it with the broker's own explanation; broker tests are never
silently skipped. Both brokers are stopped, and their temporary directories removed, at the end.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, settings

from gateway.devserver.brokers import BrokerError, RabbitMQ, Tansu

# The machine is small and shared: judge properties by their examples, not by how fast
# hypothesis could generate them.
settings.register_profile(
    "gateway", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("gateway")

B = TypeVar("B", Tansu, RabbitMQ)


@contextlib.contextmanager
def _serve(broker: B, name: str) -> Iterator[B]:
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

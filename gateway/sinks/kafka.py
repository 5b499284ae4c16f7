"""Kafka sink: an aiokafka producer with acks=all, idempotence from settings, and deadlines.

aiokafka's `send_and_wait()` and `stop()` can hang "apparently forever" while Kafka is down
(aiokafka #1101, even with request_timeout_ms), so every call here runs under a deadline and
a miss becomes `PublishError`. Idempotence is on by default; brokers without InitProducerId
(Tansu) need `kafka.enable_idempotence: false`, which keeps acks=all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from gateway.errors import PublishError
from gateway.settings import KafkaSettings
from gateway.sinks.tls import client_context

log = logging.getLogger(__name__)


class KafkaSink:
    """Publish records to Kafka topics. `async with KafkaSink(settings) as sink:`."""

    def __init__(self, settings: KafkaSettings, *, timeout: float = 10.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self._producer: AIOKafkaProducer | None = None
        # Set after an indefinite failure (no answer in time): the producer's state is unknown,
        # so the owner replaces it rather than keep using it (reliability-performance A57).
        self.stale = False

    async def __aenter__(self) -> KafkaSink:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        producer = AIOKafkaProducer(**producer_options(self.settings, self.timeout))
        try:
            await asyncio.wait_for(producer.start(), self.timeout)
        except (KafkaError, OSError, TimeoutError) as exc:
            await _stop_quietly(producer, self.timeout)
            servers = ",".join(self.settings.bootstrap_servers)
            raise PublishError(
                f"kafka.bootstrap_servers '{servers}': cannot start the producer "
                f"({type(exc).__name__}: {exc}); check the brokers are reachable"
            ) from exc
        self._producer = producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await _stop_quietly(producer, self.timeout)

    async def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Send one record and wait for acks=all; raise PublishError on failure or deadline."""
        if self._producer is None:
            raise PublishError("the Kafka sink is not started")
        record_headers = [(name, val.encode("utf-8")) for name, val in (headers or {}).items()]
        try:
            await asyncio.wait_for(
                self._producer.send_and_wait(
                    topic,
                    value,
                    key=key.encode("utf-8") if key is not None else None,
                    headers=record_headers or None,
                ),
                self.timeout,
            )
        except TimeoutError as exc:
            self.stale = True
            raise PublishError(
                f"kafka:{topic}: no acknowledgement within {self.timeout:g}s"
            ) from exc
        except KafkaError as exc:
            raise PublishError(f"kafka:{topic}: {type(exc).__name__}: {exc}") from exc


def producer_options(settings: KafkaSettings, timeout: float) -> dict[str, Any]:
    """AIOKafkaProducer keyword arguments from settings: durability, then security."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        "acks": "all",
        "enable_idempotence": settings.enable_idempotence,
        "request_timeout_ms": int(timeout * 1000),
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = client_context(
            settings.ssl_cafile, settings.ssl_certfile, settings.ssl_keyfile
        )
    if settings.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.sasl_mechanism or "PLAIN"
        options["sasl_plain_username"] = settings.sasl_username
        if settings.sasl_password is not None:
            options["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return options


async def _stop_quietly(producer: AIOKafkaProducer, timeout: float) -> None:
    try:
        await asyncio.wait_for(producer.stop(), timeout)
    except (KafkaError, OSError, TimeoutError) as exc:
        log.warning("kafka producer did not stop cleanly: %s: %s", type(exc).__name__, exc)

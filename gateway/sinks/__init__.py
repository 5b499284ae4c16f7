"""Sinks: where completion events, replies and dead letters are published.

`Publisher` is the one object the rest of the gateway uses: it routes a `Destination` to the
Kafka or the AMQP sink, connecting to a broker only when something is first published there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from gateway.errors import PublishError
from gateway.events import header_bytes
from gateway.plan import Destination
from gateway.settings import Settings
from gateway.sinks.amqp import AmqpSink
from gateway.sinks.base import Sink
from gateway.sinks.kafka import KafkaSink

__all__ = ["AmqpSink", "KafkaSink", "Publisher", "Sink"]


class Publisher:
    """Implements `Sink`. `async with Publisher(settings) as publisher:`; closes what it opened.

    A failed connection attempt raises `PublishError`. Each broker has its own lock, so a Kafka
    outage (a start can take up to twice `timeout`) never holds up AMQP publishes (dead letters,
    replies). A failed Kafka start is remembered for `retry_after` seconds: publishes meanwhile
    fail at once instead of queueing behind one another for a deadline each.
    """

    def __init__(
        self, settings: Settings, *, timeout: float = 10.0, retry_after: float = 5.0
    ) -> None:
        self.settings = settings
        self.timeout = timeout
        self.retry_after = retry_after
        self._kafka: KafkaSink | None = None
        self._amqp: AmqpSink | None = None
        self._kafka_lock = asyncio.Lock()
        self._amqp_lock = asyncio.Lock()
        self._kafka_failure: tuple[float, str] | None = None  # (monotonic deadline, message)
        self._closing: set[asyncio.Task[None]] = set()  # stale producers being closed

    async def __aenter__(self) -> Publisher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        kafka, amqp = self._kafka, self._amqp
        self._kafka = self._amqp = None
        if kafka is not None:
            await kafka.stop()
        if amqp is not None:
            await amqp.stop()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def publish(
        self,
        destination: Destination,
        body: bytes,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
        correlation_id: str | None = None,
        content_type: str = "application/json",
    ) -> None:
        if destination.kind == "kafka":
            kafka_headers: dict[str, str | bytes] = dict(headers or {})
            # Kafka has no message properties: content type and correlation travel as headers.
            kafka_headers.setdefault("content-type", content_type)
            if correlation_id is not None:
                # The bytes the request carried, under the name a Kafka requester reads them
                # (Spring's kafka_correlationId) and as the generic correlation-id.
                raw = header_bytes(correlation_id)
                kafka_headers.setdefault("correlation-id", raw)
                kafka_headers.setdefault(self.settings.kafka.correlation_id_header, raw)
            sink = await self._kafka_sink()
            try:
                await sink.send(destination.name, body, key=key, headers=kafka_headers)
            finally:
                if sink.stale:
                    self._drop_kafka(sink)
            return
        amqp = await self._amqp_sink()
        await amqp.send(
            destination.name,
            destination.routing_key,
            body,
            headers=headers,
            correlation_id=correlation_id,
            content_type=content_type,
            # A binary-mode CloudEvent's id doubles as the AMQP message id (consumer dedupe).
            message_id=(headers or {}).get("cloudEvents:id"),
        )

    async def _kafka_sink(self) -> KafkaSink:
        if self._kafka is not None:  # the common case takes no lock
            return self._kafka
        async with self._kafka_lock:
            if self._kafka is None:
                self._fail_fast()
                sink = KafkaSink(self.settings.kafka, timeout=self.timeout)
                try:
                    await sink.start()
                except PublishError as exc:
                    self._kafka_failure = (time.monotonic() + self.retry_after, str(exc))
                    raise
                self._kafka_failure = None
                self._kafka = sink
            return self._kafka

    def _fail_fast(self) -> None:
        """Raise the last Kafka start failure again while it is recent."""
        if self._kafka_failure is None:
            return
        until, message = self._kafka_failure
        if time.monotonic() < until:
            raise PublishError(f"{message} (not retried for {self.retry_after:g}s)")
        self._kafka_failure = None

    def _drop_kafka(self, sink: KafkaSink) -> None:
        """Replace a producer after an indefinite failure; the next publish starts a new one.
        It closes in the background (bounded by its deadline), so the failed publish ends
        within its own deadline; `close()` waits for it."""
        if self._kafka is sink:
            self._kafka = None
        closing = asyncio.create_task(sink.stop())
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def _amqp_sink(self) -> AmqpSink:
        if self._amqp is not None:
            return self._amqp
        async with self._amqp_lock:
            if self._amqp is None:
                sink = AmqpSink(self.settings.amqp, timeout=self.timeout)
                await sink.start()
                self._amqp = sink
            return self._amqp

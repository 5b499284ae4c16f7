"""Sinks: where completion events, replies and dead letters are published.

`Publisher` is the one object the rest of the gateway uses: it routes a `Destination` to the
Kafka or the AMQP sink, connecting to a broker only when something is first published there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import TracebackType

from gateway.plan import Destination
from gateway.settings import Settings
from gateway.sinks.amqp import AmqpSink
from gateway.sinks.base import Sink
from gateway.sinks.kafka import KafkaSink

__all__ = ["AmqpSink", "KafkaSink", "Publisher", "Sink"]


class Publisher:
    """Implements `Sink`. `async with Publisher(settings) as publisher:`; closes what it opened.

    A failed connection attempt raises `PublishError` and is tried again on the next publish.
    """

    def __init__(self, settings: Settings, *, timeout: float = 10.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self._kafka: KafkaSink | None = None
        self._amqp: AmqpSink | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> Publisher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        kafka, amqp = self._kafka, self._amqp
        self._kafka = self._amqp = None
        if kafka is not None:
            await kafka.stop()
        if amqp is not None:
            await amqp.stop()

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
            kafka_headers = dict(headers or {})
            # Kafka has no message properties: content type and correlation travel as headers.
            kafka_headers.setdefault("content-type", content_type)
            if correlation_id is not None:
                kafka_headers.setdefault("correlation-id", correlation_id)
            sink = await self._kafka_sink()
            try:
                await sink.send(destination.name, body, key=key, headers=kafka_headers)
            finally:
                if sink.stale:
                    await self._drop_kafka(sink)
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
        async with self._lock:
            if self._kafka is None:
                sink = KafkaSink(self.settings.kafka, timeout=self.timeout)
                await sink.start()
                self._kafka = sink
            return self._kafka

    async def _drop_kafka(self, sink: KafkaSink) -> None:
        """Replace a producer after an indefinite failure; the next publish starts a new one."""
        async with self._lock:
            if self._kafka is sink:
                self._kafka = None
        await sink.stop()  # bounded by the sink's deadline

    async def _amqp_sink(self) -> AmqpSink:
        async with self._lock:
            if self._amqp is None:
                sink = AmqpSink(self.settings.amqp, timeout=self.timeout)
                await sink.start()
                self._amqp = sink
            return self._amqp

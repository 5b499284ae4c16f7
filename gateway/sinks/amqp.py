"""AMQP sink: aio-pika robust connection, publisher confirms, mandatory publishes that raise.

aio-pika's defaults confirm publishes but do NOT raise on a returned (unroutable) message
(`on_return_raises=False`), and RabbitMQ confirms an unroutable message too; so the channel is
opened with `on_return_raises=True` and every publish is `mandatory`: a message no queue
receives becomes `PublishError`, never a silent drop. Each publish has a deadline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection
from aio_pika.exceptions import AMQPError

from gateway.errors import PublishError
from gateway.settings import AmqpSettings
from gateway.sinks.base import BrokerSink
from gateway.sinks.tls import client_context

log = logging.getLogger(__name__)

# What the transport raises besides aio-pika's own tree (connection loss, closed channel).
_FAILURES = (AMQPError, OSError, RuntimeError, ConnectionError)


class AmqpSink(BrokerSink):
    """Publish to exchanges/queues with confirms. `async with AmqpSink(settings) as sink:`."""

    def __init__(self, settings: AmqpSettings, *, timeout: float = 10.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        try:
            self._connection = await asyncio.wait_for(
                aio_pika.connect_robust(
                    self.settings.url.get_secret_value(), **connect_options(self.settings)
                ),
                self.timeout,
            )
        except (*_FAILURES, TimeoutError) as exc:
            # Imported here: the source imports the sinks (its dead letters go through them).
            from gateway.sources.amqp import security_problem

            problem = security_problem(exc, self.settings)
            raise PublishError(
                f"amqp: {problem}"
                if problem
                else f"amqp.url '{_safe_url(self.settings)}': cannot connect "
                f"({type(exc).__name__}: {exc}); check the broker and credentials"
            ) from exc

    async def stop(self) -> None:
        connection, self._connection = self._connection, None
        self._channel = None
        self._exchanges.clear()
        if connection is not None:
            try:
                await asyncio.wait_for(connection.close(), self.timeout)
            except (*_FAILURES, TimeoutError) as exc:
                log.warning("amqp connection did not close cleanly: %s", type(exc).__name__)

    async def send(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        headers: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
        content_type: str = "application/json",
        message_id: str | None = None,
    ) -> None:
        """Publish persistently and wait for the broker's confirm; raise PublishError if
        it was nacked, returned as unroutable, or not confirmed within the deadline."""
        message = aio_pika.Message(
            body,
            headers=dict(headers or {}),
            content_type=content_type,
            correlation_id=correlation_id,
            message_id=message_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        where = f"amqp:{exchange}/{routing_key}" if exchange else f"amqp:{routing_key}"
        try:
            target = await self._exchange(exchange)
            await asyncio.wait_for(
                target.publish(message, routing_key, mandatory=True, timeout=self.timeout),
                self.timeout,
            )
        except TimeoutError as exc:
            raise PublishError(f"{where}: no confirm within {self.timeout:g}s") from exc
        except aio_pika.exceptions.PublishError as exc:
            raise PublishError(
                f"{where}: unroutable (returned by the broker): no queue is bound for it; "
                "declare the queue or bind it to the exchange"
            ) from exc
        except _FAILURES as exc:
            self._forget_channel()
            raise PublishError(f"{where}: {type(exc).__name__}: {exc}") from exc

    async def _exchange(self, name: str) -> AbstractExchange:
        async with self._lock:
            channel = await self._ensure_channel()
            if name not in self._exchanges:
                self._exchanges[name] = (
                    channel.default_exchange
                    if not name
                    else await channel.get_exchange(name, ensure=False)
                )
            return self._exchanges[name]

    async def _ensure_channel(self) -> AbstractChannel:
        if self._connection is None:
            raise PublishError("the AMQP sink is not started")
        if self._channel is None or self._channel.is_closed:
            self._exchanges.clear()
            self._channel = await asyncio.wait_for(
                self._connection.channel(publisher_confirms=True, on_return_raises=True),
                self.timeout,
            )
        return self._channel

    def _forget_channel(self) -> None:
        # A publish to a missing exchange closes the channel (404); the next publish opens one.
        if self._channel is not None and self._channel.is_closed:
            self._channel = None
            self._exchanges.clear()


def connect_options(settings: AmqpSettings) -> dict[str, Any]:
    """connect_robust keyword arguments: TLS with verification for amqps://."""
    options: dict[str, Any] = {
        "reconnect_interval": settings.reconnect_interval,
        "client_properties": {"connection_name": "conductor-gateway sink"},
    }
    if urlsplit(settings.url.get_secret_value()).scheme == "amqps":
        options["ssl_context"] = client_context(
            settings.ssl_cafile, settings.ssl_certfile, settings.ssl_keyfile
        )
    return options


def _safe_url(settings: AmqpSettings) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(settings.url.get_secret_value())
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    return f"{parts.scheme}://{netloc}{parts.path}"

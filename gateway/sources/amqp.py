"""AMQP source (aio-pika): robust consumers that ack only settled deliveries.

- `connect_robust`; one channel per consumer (queue), each with its own prefetch window:
  `amqp.prefetch` deliveries in work plus `ACK_HOLD` settled ones that may wait for a batched
  ack, so batching never takes a slot from the work. Every queue and exchange object is held by
  this source (aio-pika restores only what is still referenced, pitfall A31), declared again on
  reconnect by aio-pika, and a missing consumer is re-created by aio-pika 10's consumer
  recovery (pitfall A32).
- Acks are batched per channel (sources/acks.py): `multiple=True` once every earlier delivery
  tag of the channel is settled, a few milliseconds after the pipeline settled the delivery;
  never before (nothing is acked before its effect is durable). A crash loses at most those few
  milliseconds of acks: the broker redelivers them and the store dedupes.
- Retry without blocking the queue: a retryable failure publishes a copy to a TTL queue
  `<queue>.gateway-retry.<ms>` that dead-letters back to the source queue, then acks the
  original. Delays are rounded up to a power-of-two tier, so one queue holds one delay and a
  long delay never holds back a short one. `x-gateway-attempts` and `x-gateway-first-seen`
  travel with the copy and bound the attempts and the age.
- Retry copies go through their own channel with publisher confirms and `on_return_raises`: a
  copy the broker cannot route (its retry queue was deleted) raises instead of being "confirmed"
  and lost. The queue is declared again and the copy sent once more; failing that, `defer`
  raises PublishError and the pipeline puts the original back (`requeue`: basic.reject with
  requeue). Retry queues that already exist are used as they are (a passive
  probe first), so one declared with other arguments cannot close a channel.
- A delivery belongs to the channel it came on: when that channel closes the broker redelivers
  it, so its work is cancelled and nothing is acked or copied for it any more.
- Dead letters are published by the pipeline (through the Publisher) before the ack.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import aio_pika
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aio_pika.exceptions import (
    CONNECTION_EXCEPTIONS,
    ChannelInvalidStateError,
    ChannelNotFoundEntity,
)
from aio_pika.exceptions import PublishError as ReturnedError
from aiormq.abc import AbstractChannel

from gateway.deadletters import (
    ATTEMPTS_HEADER,
    FIRST_SEEN_HEADER,
    ORIGIN_EXCHANGE,
    ORIGIN_ROUTING_KEY,
)
from gateway.errors import Abandoned, PublishError
from gateway.events import Event
from gateway.metrics import Metrics
from gateway.pipeline import Job, Pipeline
from gateway.settings import AmqpSettings, LimitSettings
from gateway.sinks.tls import tls_problem
from gateway.sources.acks import Acks
from gateway.sources.base import Ordered, SourceUnavailable, read_body, read_event

log = logging.getLogger(__name__)

MIN_TIER_MS = 250
RETRY_PUBLISH_SECONDS = 10.0  # a retry copy not confirmed by then: requeue the original
ACK_INTERVAL = 0.005  # seconds a settled delivery may wait to share its ack with others
ACK_LINGER = 0.1  # ...and, behind an unsettled earlier delivery, before it is acked alone
ACK_HOLD = 32  # settled deliveries per channel that may wait behind an unsettled one


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A queue to consume, and the bindings the rules need (exchange, routing key)."""

    name: str
    bindings: tuple[tuple[str, str], ...] = ()


def retry_tier_ms(delay: float) -> int:
    """The smallest power-of-two multiple of 250 ms that is at least `delay`."""
    tier = MIN_TIER_MS
    while tier < delay * 1000 and tier < 86_400_000:
        tier *= 2
    return tier


def retry_queue_name(queue: str, tier_ms: int) -> str:
    return f"{queue}.gateway-retry.{tier_ms}"


class AmqpDelivery:
    defers = True

    def __init__(
        self, source: AmqpSource, message: AbstractIncomingMessage, event: Event, error: str | None
    ) -> None:
        self._source = source
        self._message = message
        self.event = event
        self.error = error
        headers = message.headers or {}
        self.attempts = _int(headers.get(ATTEMPTS_HEADER), 0)
        self.first_seen = _int(headers.get(FIRST_SEEN_HEADER), int(time.time() * 1000)) / 1000
        self.suspect = bool(message.redelivered)
        self._tag = message.delivery_tag or 0

    @property
    def orphaned(self) -> bool:
        """The channel this came on is closed: the broker redelivers it to someone else."""
        return channel_closed(self._message)

    async def ack(self) -> None:
        if self.orphaned:
            raise Abandoned  # acking on a new channel is impossible; the copy is redelivered
        self._source.acks_of(self._message).ack(self._tag)

    async def defer(self, delay: float, attempts: int) -> None:
        if self.orphaned:
            raise Abandoned  # a retry copy now would run beside the broker's redelivery
        try:
            async with asyncio.timeout(RETRY_PUBLISH_SECONDS):
                await self._source.publish_retry(
                    self._message, self.event, delay, attempts, self.first_seen
                )
        except Exception as exc:
            raise PublishError(f"retry copy not confirmed ({type(exc).__name__})") from exc
        await self.ack()

    async def requeue(self) -> None:
        # reject, not nack: a quorum queue's delivery limit counts rejects (A44)
        await self._give_back(self._message.reject(requeue=True), "reject")

    async def release(self) -> None:
        # nack, not reject: giving it back at a stop is not one of its attempts (A44)
        await self._give_back(self._message.nack(requeue=True), "nack")

    async def _give_back(self, settle: Awaitable[None], what: str) -> None:
        try:
            await settle
        except Exception:
            log.debug("%s failed; the broker requeues on channel close", what)
        if not self.orphaned:  # settled by itself: no later batched ack waits for it
            self._source.acks_of(self._message).forget(self._tag)


class AmqpSource:
    """`async with AmqpSource(...) as source: await source.run()`; `stop_intake()` ends it."""

    def __init__(
        self,
        settings: AmqpSettings,
        queues: list[QueueSpec],
        pipeline: Pipeline,
        *,
        limits: LimitSettings,
        metrics: Metrics,
        declare: list[str] | None = None,
    ) -> None:
        self._settings = settings
        self._specs = queues
        self._declare = sorted(set(declare or ()))
        self._pipeline = pipeline
        self._limits = limits
        self._metrics = metrics
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None  # declarations
        self._consumers: dict[str, AbstractRobustChannel] = {}  # a channel per queue consumed
        self._acks: dict[AbstractChannel, Acks] = {}  # per underlying channel (tags are per one)
        self._retry_channel: AbstractRobustChannel | None = None  # confirms, returns raise
        self._queues: dict[str, AbstractQueue] = {}  # strong references (A31)
        self._keep: list[Any] = []  # exchanges and retry queues, also kept alive
        self._retry_queues: dict[str, AbstractQueue] = {}
        self._tags: dict[str, str] = {}
        self._ordered = Ordered()
        self._stopping = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    async def __aenter__(self) -> AmqpSource:
        try:
            self._connection = await aio_pika.connect_robust(
                self._settings.url.get_secret_value(),
                ssl_context=self._ssl_context(),
                reconnect_interval=self._settings.reconnect_interval,
            )
        except (*CONNECTION_EXCEPTIONS, OSError) as exc:
            raise SourceUnavailable(unavailable_cause(exc, self._settings)) from None
        try:
            await self._open_channels()
        except BaseException:  # cancelled (SIGTERM during start-up) or refused: close
            await self._connection.close()
            raise
        return self

    async def _open_channels(self) -> None:
        assert self._connection is not None
        self._channel = await self._connection.channel(publisher_confirms=True)
        self._retry_channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        for name in self._declare:
            self._keep.append(await self.channel.declare_queue(name, durable=True))
        for spec in self._specs:
            await self._declare_source(spec)

    async def __aexit__(self, *exc: object) -> None:
        if self._connection is not None:
            await self._connection.close()

    @property
    def channel(self) -> AbstractRobustChannel:
        """The channel that declares exchanges and the queues published to."""
        assert self._channel is not None, "use `async with AmqpSource(...)`"
        return self._channel

    def consumer_channel(self, queue: str) -> AbstractRobustChannel:
        """The channel that consumes `queue` (its own prefetch window and delivery tags)."""
        return self._consumers[queue]

    @property
    def retry_channel(self) -> AbstractRobustChannel:
        assert self._retry_channel is not None, "use `async with AmqpSource(...)`"
        return self._retry_channel

    def _ssl_context(self) -> ssl.SSLContext | None:
        s = self._settings
        if not s.url.get_secret_value().startswith("amqps://"):
            return None
        context = ssl.create_default_context(cafile=str(s.ssl_cafile) if s.ssl_cafile else None)
        if s.ssl_certfile:
            context.load_cert_chain(str(s.ssl_certfile), str(s.ssl_keyfile or "") or None)
        return context

    async def _declare_source(self, spec: QueueSpec) -> None:
        # A queue or exchange that exists is used as it is (quorum queue, other arguments,
        # another exchange type); declaring it with different arguments would close the channel.
        exists = await self._exists("queue", spec.name)
        assert self._connection is not None
        consumer = await self._connection.channel()
        await consumer.set_qos(prefetch_count=self._settings.prefetch + ACK_HOLD)
        self._consumers[spec.name] = consumer
        # Declared on its consumer's channel: the queue object consumes where it was declared.
        queue = await consumer.declare_queue(spec.name, durable=True, passive=exists)
        for exchange_name, routing_key in spec.bindings:
            exchange = await self.channel.declare_exchange(
                exchange_name,
                aio_pika.ExchangeType.TOPIC,
                durable=True,
                passive=await self._exists("exchange", exchange_name),
            )
            self._keep.append(exchange)
            await queue.bind(exchange, routing_key)
        self._queues[spec.name] = queue

    async def _exists(self, kind: str, name: str) -> bool:
        """Probe on a throwaway channel: a passive declare of a missing entity closes it."""
        assert self._connection is not None
        probe = await self._connection.channel()
        try:
            if kind == "queue":
                await probe.declare_queue(name, passive=True)
            else:
                await probe.get_exchange(name, ensure=True)
        except ChannelNotFoundEntity:
            return False
        finally:
            with contextlib.suppress(Exception):
                await probe.close()
        return True

    # -- consuming ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume every queue until `stop_intake()`."""
        for name, queue in self._queues.items():
            self._tags[name] = await queue.consume(self._on_message)
        log.info("consuming %s", ", ".join(self._queues))
        await self._stopping.wait()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        # Neither reading nor dispatching raises: every message becomes a job the pipeline
        # settles (one that arrives while stopping is given back), so none holds its slot.
        with contextlib.suppress(ChannelInvalidStateError):  # closed: it is redelivered anyway
            self.acks_of(message).expect(message.delivery_tag or 0)
        queue = _queue_of(message, self._tags)
        event, error = read_event(
            lambda: to_event(message, queue, self._limits),
            lambda: bare_event(message, queue),
            queue,
        )
        job = self._pipeline.dispatch(AmqpDelivery(self, message, event, error))
        await self._ordered.run_here(job.key, lambda: self._process(job, message))

    async def _process(self, job: Job, message: AbstractIncomingMessage) -> None:
        """Run the job; cancel it if the delivery's channel closes (the broker redelivers)."""
        task = asyncio.current_task()
        try:
            closing = message.channel.closing
        except ChannelInvalidStateError:
            return  # closed while waiting its turn: the broker redelivers it
        if task is None:  # pragma: no cover - always inside a task
            return

        def cancel(_: object) -> None:
            log.info(
                "channel closed: abandoning %s (it will be redelivered)",
                job.delivery.event.source_id,
            )
            task.cancel()

        closing.add_done_callback(cancel)
        try:
            await self._pipeline.run(job)
        finally:
            closing.remove_done_callback(cancel)

    def acks_of(self, message: AbstractIncomingMessage) -> Acks:
        """The ack batch of the channel `message` came on (raises if that channel closed)."""
        channel = message.channel
        acks = self._acks.get(channel)
        if acks is None:
            send = functools.partial(_basic_ack, channel)
            acks = Acks(send, hold=ACK_HOLD, interval=ACK_INTERVAL, linger=ACK_LINGER)
            self._acks[channel] = acks
            channel.closing.add_done_callback(lambda _: self._acks.pop(channel, None))
        return acks

    async def publish_retry(
        self,
        message: AbstractIncomingMessage,
        event: Event,
        delay: float,
        attempts: int,
        first_seen: float,
    ) -> None:
        """Publish a retry copy to the tier's retry queue; confirmed, or raise PublishError."""
        assert event.queue is not None
        tier = retry_tier_ms(delay)
        name = retry_queue_name(event.queue, tier)
        copy = retry_copy(message, attempts, first_seen)
        await self._retry_queue(name, event.queue, tier)
        try:
            await self.retry_channel.default_exchange.publish(
                copy, routing_key=name, mandatory=True
            )
        except ReturnedError:
            # The retry queue is gone (deleted by hand, or a policy): declare it and try once more.
            log.warning("retry queue %s is missing; declaring it again", name)
            self._retry_queues.pop(name, None)
            await self._retry_queue(name, event.queue, tier)
            try:
                await self.retry_channel.default_exchange.publish(
                    copy, routing_key=name, mandatory=True
                )
            except ReturnedError as exc:
                raise PublishError(f"retry queue {name} does not take messages") from exc

    async def _retry_queue(self, name: str, queue: str, tier: int) -> None:
        if name in self._retry_queues:
            return
        # A retry queue that exists is used as it is: declaring it with other arguments would
        # fail with PRECONDITION_FAILED and close the channel.
        exists = await self._exists("queue", name)
        self._retry_queues[name] = await self.retry_channel.declare_queue(
            name,
            durable=True,
            passive=exists,
            arguments=None
            if exists
            else {
                "x-message-ttl": tier,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": queue,
            },
        )

    # -- shutdown ----------------------------------------------------------------------------

    async def stop_intake(self) -> None:
        self._stopping.set()
        for name, tag in list(self._tags.items()):
            try:
                await self._queues[name].cancel(tag)
            except Exception as exc:
                log.warning("cancel of consumer on %s failed (%s)", name, type(exc).__name__)
        self._tags.clear()

    async def drain(self, timeout: float) -> None:
        cut = await self._ordered.drain(timeout)
        if cut:
            log.warning("%d AMQP deliveries unfinished at shutdown; they will be redelivered", cut)
        await asyncio.gather(*(acks.close() for acks in list(self._acks.values())))


async def _basic_ack(channel: AbstractChannel, tag: int, multiple: bool) -> None:
    await channel.basic_ack(delivery_tag=tag, multiple=multiple)


def _queue_of(message: AbstractIncomingMessage, tags: Mapping[str, str]) -> str:
    for name, tag in tags.items():
        if tag == message.consumer_tag:
            return name
    return message.routing_key or ""


def channel_closed(message: AbstractIncomingMessage) -> bool:
    try:
        return message.channel.is_closed
    except ChannelInvalidStateError:
        return True


def retry_copy(
    message: AbstractIncomingMessage, attempts: int, first_seen: float
) -> aio_pika.Message:
    """The message as it goes to a retry queue: same body and properties, attempt headers."""
    headers: dict[str, Any] = dict(message.headers or {})
    headers[ATTEMPTS_HEADER] = attempts
    headers[FIRST_SEEN_HEADER] = int(first_seen * 1000)
    headers.setdefault(ORIGIN_EXCHANGE, message.exchange or "")
    headers.setdefault(ORIGIN_ROUTING_KEY, message.routing_key or "")
    return aio_pika.Message(
        message.body,
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        timestamp=message.timestamp,
        type=message.type,
        app_id=message.app_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


def bare_event(message: AbstractIncomingMessage, queue: str) -> Event:
    """The least Event a message always has: enough to dead-letter it where it came from."""
    return Event(
        source="amqp",
        raw=message.body,
        body=None,
        queue=queue,
        exchange=message.exchange,
        routing_key=message.routing_key,
        message_id=message.message_id if isinstance(message.message_id, str) else None,
    )


def to_event(
    message: AbstractIncomingMessage, queue: str, limits: LimitSettings
) -> tuple[Event, str | None]:
    headers = {str(k): _text(v) for k, v in (message.headers or {}).items()}
    exchange = headers.pop(ORIGIN_EXCHANGE, None)
    routing_key = headers.pop(ORIGIN_ROUTING_KEY, None)
    body, body_error, error = read_body(message.body, limits)
    timestamp = message.timestamp
    event = Event(
        source="amqp",
        raw=message.body,
        body=body,
        body_error=body_error,
        headers={
            k: v for k, v in headers.items() if not k.startswith("x-gateway-") and k != "x-death"
        },
        queue=queue,
        exchange=exchange if exchange is not None else message.exchange,
        routing_key=routing_key if routing_key is not None else message.routing_key,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        timestamp=int(timestamp.timestamp() * 1000) if isinstance(timestamp, datetime) else None,
    )
    return event, error


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def unavailable_cause(exc: BaseException, settings: AmqpSettings) -> str:
    """The one-line reason RabbitMQ could not be used at start, naming the setting to check.

    The single place that words the AMQP client's start-up failures (/readyz, the log); the URL
    is shown without its credentials."""
    parts = urlsplit(settings.url.get_secret_value())
    where = f"{parts.hostname}:{parts.port or (5671 if parts.scheme == 'amqps' else 5672)}"
    detail = (str(exc).splitlines() or [""])[0]
    if parts.password:
        detail = detail.replace(parts.password, "****")
    problem = security_problem(exc, settings)
    if problem is not None:
        return problem
    what = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return f"cannot connect to {where} ({what}); check amqp.url and that the broker is up"


def security_problem(exc: BaseException, settings: AmqpSettings) -> str | None:
    """A TLS or login failure worded with the setting that fixes it; None for other failures."""
    parts = urlsplit(settings.url.get_secret_value())
    where = f"{parts.hostname}:{parts.port or (5671 if parts.scheme == 'amqps' else 5672)}"
    detail = (str(exc).splitlines() or [""])[0]
    if "ACCESS_REFUSED" in detail:
        return (
            f"{where} refused the login of user '{parts.username}'; check the user and password "
            "in amqp.url"
        )
    problem = tls_problem(detail, "amqp", settings.ssl_cafile, where)
    if problem is not None and "plaintext port" in problem:
        return f"{problem}; use amqp:// in amqp.url, or the broker's TLS port"
    if problem is None and "reset" in detail.lower():
        if parts.scheme == "amqp":
            return (
                f"{where} reset the connection; if it is a TLS port, use amqps:// in amqp.url "
                "(with amqp.ssl_cafile)"
            )
        # TLS 1.3: a missing or refused client certificate may show only as a reset.
        if settings.ssl_certfile is None:
            return (
                f"{where} reset the connection after the TLS handshake; if it requires client "
                "certificates, set amqp.ssl_certfile and amqp.ssl_keyfile"
            )
        return (
            f"{where} reset the connection after the TLS handshake; check that it trusts the CA "
            f"of amqp.ssl_certfile={settings.ssl_certfile}"
        )
    return problem

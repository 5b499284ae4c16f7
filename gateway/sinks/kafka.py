"""Kafka sink: an aiokafka producer with acks=all, idempotence from settings, and deadlines.

aiokafka's `send_and_wait()` and `stop()` can hang "apparently forever" while Kafka is down
(aiokafka #1101, even with request_timeout_ms), so every call here runs under a deadline and
a miss becomes `PublishError`. Idempotence is on by default; brokers without InitProducerId
(Tansu) need `kafka.enable_idempotence: false`, which keeps acks=all.

aiokafka's `stop()` flushes without a bound, and once cancelled it leaves the producer's sender
retrying and its connections open for good (a second `stop()` returns at once, the producer
being marked closed). So a producer is never stopped by cancelling `stop()`: after its grace
period (none for a producer whose broker stopped answering) its sender is stopped and its
unsent records failed, which lets `stop()` close the connections.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError, MessageSizeTooLargeError

from gateway.errors import MessageTooLarge, PublishError
from gateway.settings import KafkaSettings
from gateway.sinks.base import BrokerSink
from gateway.sources.kafka_config import security_options, security_problem

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024 * 1024  # the client's own cap; brokers default to 1 MiB


class KafkaSink(BrokerSink):
    """Publish records to Kafka topics. `async with KafkaSink(settings) as sink:`."""

    def __init__(self, settings: KafkaSettings, *, timeout: float = 10.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self._producer: AIOKafkaProducer | None = None
        # Set after an indefinite failure (no answer in time): the producer's state is unknown,
        # so the owner replaces it rather than keep using it (reliability-performance A57).
        self.stale = False

    async def start(self) -> None:
        producer = AIOKafkaProducer(**producer_options(self.settings, self.timeout))
        try:
            await asyncio.wait_for(producer.start(), self.timeout)
        except (KafkaError, OSError, TimeoutError) as exc:
            await close_producer(producer, grace=0.0, timeout=self.timeout)
            servers = ",".join(self.settings.bootstrap_servers)
            problem = await security_problem(self.settings, min(self.timeout, 2.0))
            raise PublishError(
                f"kafka: {problem}"
                if problem
                else f"kafka.bootstrap_servers '{servers}': cannot start the producer "
                f"({type(exc).__name__}: {exc}); check the brokers are reachable"
            ) from exc
        self._producer = producer

    async def stop(self) -> None:
        """Flush and close; a stale producer (its broker stopped answering) is not flushed."""
        producer, self._producer = self._producer, None
        if producer is not None:
            grace = 0.0 if self.stale else self.timeout
            await close_producer(producer, grace=grace, timeout=self.timeout)

    async def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: str | None = None,
        headers: Mapping[str, str | bytes] | None = None,
    ) -> None:
        """Send one record and wait for acks=all; raise PublishError on failure or deadline."""
        if self._producer is None:
            raise PublishError("the Kafka sink is not started")
        record_headers = [
            (name, val if isinstance(val, bytes) else val.encode("utf-8"))
            for name, val in (headers or {}).items()
        ]
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
        except MessageSizeTooLargeError as exc:
            raise MessageTooLarge(
                f"kafka:{topic}: {len(value)} bytes refused as too large ({exc})"
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
        # The broker decides what is too large (a dead letter keeps a body its source took),
        # not aiokafka's own 1 MiB default.
        "max_request_size": MAX_REQUEST_BYTES,
        "request_timeout_ms": int(timeout * 1000),
    }
    options.update(security_options(settings))
    return options


async def close_producer(producer: AIOKafkaProducer, *, grace: float, timeout: float) -> None:
    """Stop `producer`: flush for up to `grace` seconds; then tear it down, dropping what is
    unsent, within `timeout` more (a warning says when it could not be)."""
    stopping = asyncio.ensure_future(producer.stop()) if grace > 0 else None
    if stopping is None or not await _finished(stopping, grace):
        await _tear_down(producer, timeout)
        stopping = stopping or asyncio.ensure_future(producer.stop())
        if not await _finished(stopping, 2.0):
            log.warning("kafka producer did not close within %gs", grace + timeout + 2.0)
            return
    exc = stopping.exception()
    if isinstance(exc, KafkaError | OSError):
        log.warning("kafka producer did not stop cleanly: %s: %s", type(exc).__name__, exc)
    elif exc is not None:
        raise exc


async def _finished(task: asyncio.Future[None], seconds: float) -> bool:
    done, _ = await asyncio.wait({task}, timeout=seconds)  # never cancels the task
    return bool(done)


async def _tear_down(producer: AIOKafkaProducer, timeout: float) -> None:
    """Stop the producer's sender (it would retry unacknowledged records for ever), then fail
    the records it leaves, so that `stop()` (pending or next) closes the connections at once.

    The sender ends once its requests in flight are answered or time out (the request
    timeout); the records are failed only then, as the sender may still put them back."""
    sender = getattr(producer, "_sender", None)
    task = getattr(sender, "sender_task", None)
    if task is not None and not task.done():
        task.cancel()
        if not await _finished(task, timeout + 1.0):
            return
    accumulator = getattr(producer, "_message_accumulator", None)
    if accumulator is not None:
        batches = [*getattr(accumulator, "_pending_batches", ())]
        batches += [b for queue in getattr(accumulator, "_batches", {}).values() for b in queue]
        accumulator.fail_all(KafkaTimeoutError("the producer was closed with records unsent"))
        for batch in batches:  # nobody waits for these: retrieved, so asyncio logs nothing
            for waiter in (batch.future, getattr(batch, "_drain_waiter", None)):
                if waiter is not None and waiter.done() and not waiter.cancelled():
                    waiter.exception()

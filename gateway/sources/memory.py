"""An in-memory source: a topic or a queue inside the process, for tests without a broker.

    async with MemorySource(pipeline, topic="orders") as source:
        message = source.put({"id": "o-1"}, key="k")
        await source.idle()                       # everything put so far is settled
        assert message.settlements == ["ack"]

It is a source like the Kafka and AMQP ones, not a mock: the pipeline cannot tell it from them,
and the rules select it as `topic:` or `queue:`. Messages of one key run one after another,
intake waits while the pipeline has it closed (Conductor down), and `stop_intake()` / `drain()`
behave as the gateway's shutdown expects. A topic's messages are Kafka-shaped (partition 0,
offsets from 0) and retried in place; a queue's are AMQP-shaped (message ids) and retried the
way the AMQP source does it: the original is acked and a copy comes back after the delay with
the attempt count. What a broker would deliver again (requeued or released) goes back into the
source as a redelivery; what the pipeline leaves unsettled records nothing.

Each `MemoryMessage` keeps how it was settled, in order: "ack", "defer", "requeue", "release".
`refuse_retry_copies=N` makes a queue refuse the next N retry copies, as a broker may.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import PublishError
from gateway.events import Event, SourceKind
from gateway.pipeline import Pipeline
from gateway.settings import LimitSettings
from gateway.sources.base import Ordered, read_body

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 0.005  # how often `idle()` looks; it waits on in-process work only


@dataclass(slots=True)
class MemoryMessage:
    """A message put into the source, and how each of its deliveries was settled."""

    raw: bytes
    key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    message_id: str | None = None
    correlation_id: str | None = None
    offset: int | None = None  # topics only: the message's place in partition 0
    redelivered: bool = False  # a broker's redelivery mark: the start dedupe looks it up
    attempts: int = 0  # attempts already made (queues carry it on retry copies)
    first_seen: float = field(default_factory=time.time)
    settlements: list[str] = field(default_factory=list)
    deliveries: int = 0  # how often it was handed to the pipeline

    @property
    def acked(self) -> int:
        return self.settlements.count("ack")


class MemoryDelivery:
    """One delivery of a MemoryMessage; its settlement is recorded on the message."""

    def __init__(
        self, source: MemorySource, message: MemoryMessage, event: Event, error: str | None
    ) -> None:
        self._source = source
        self.message = message
        self.event = event
        self.error = error
        self.attempts = message.attempts
        self.first_seen = message.first_seen
        self.suspect = message.redelivered
        self.defers = source.defers

    async def ack(self) -> None:
        self.message.settlements.append("ack")

    async def defer(self, delay: float, attempts: int) -> None:
        if self._source.refuse_retry_copies:  # as a broker may: a missing or full retry queue
            self._source.refuse_retry_copies -= 1
            raise PublishError("retry copy not confirmed (refused by the memory source)")
        self.message.settlements.append("defer")
        self._source.later(delay, self.message, attempts)

    async def requeue(self) -> None:
        self.message.settlements.append("requeue")
        self._source.again(self.message)

    async def release(self) -> None:
        self.message.settlements.append("release")
        self._source.again(self.message)


class MemorySource:
    """`async with MemorySource(pipeline, topic=... or queue=...) as source`: consuming from
    the first line of the block; the block's end stops intake and drains (like SIGTERM)."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        topic: str | None = None,
        queue: str | None = None,
        limits: LimitSettings | None = None,
        drain_seconds: float = 10.0,
        refuse_retry_copies: int = 0,
    ) -> None:
        if (topic is None) == (queue is None):
            raise ValueError("MemorySource takes one of topic= or queue=")
        self.topic, self.queue = topic, queue
        self.defers = queue is not None  # a queue retries through a delayed copy, as AMQP does
        self._pipeline = pipeline
        self._limits = limits or LimitSettings()
        self._drain_seconds = drain_seconds
        self.refuse_retry_copies = refuse_retry_copies  # the next N retry copies (queues) fail
        self._inbox: asyncio.Queue[MemoryMessage] = asyncio.Queue()
        self._offsets = itertools.count()
        self._ordered = Ordered()
        self._delayed: set[asyncio.TimerHandle] = set()
        self._undelivered = 0  # put (or back) and not yet handed to the pipeline
        self._stopping = asyncio.Event()
        self._run: asyncio.Task[None] | None = None

    async def __aenter__(self) -> MemorySource:
        self._run = asyncio.create_task(self.run(), name="MemorySource")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop_intake()
        await self.drain(self._drain_seconds)
        for handle in self._delayed:
            handle.cancel()
        if self._run is not None:
            await self._run

    # -- the broker side -----------------------------------------------------------------------

    def put(
        self,
        body: bytes | Any,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        message_id: str | None = None,
        correlation_id: str | None = None,
        redelivered: bool = False,
    ) -> MemoryMessage:
        """Publish a message (bytes as they are, anything else as JSON); return it."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        message = MemoryMessage(
            raw,
            key=key,
            headers=dict(headers or {}),
            message_id=message_id,
            correlation_id=correlation_id,
            redelivered=redelivered,
        )
        if self.topic is not None:
            message.offset = next(self._offsets)
        elif message.message_id is None:
            message.message_id = f"m-{next(self._offsets)}"
        self._arrive(message)
        return message

    def _arrive(self, message: MemoryMessage) -> None:
        self._undelivered += 1
        self._inbox.put_nowait(message)

    def again(self, message: MemoryMessage) -> None:
        """Deliver the message once more, marked redelivered (a requeue or a release)."""
        message.redelivered = True
        self._arrive(message)

    def later(self, delay: float, message: MemoryMessage, attempts: int) -> None:
        """A retry copy: delivered again after `delay` seconds as attempt `attempts + 1`."""

        def arrive() -> None:
            self._delayed.discard(handle)
            message.attempts = attempts
            self._arrive(message)

        handle = asyncio.get_running_loop().call_later(delay, arrive)
        self._delayed.add(handle)

    async def idle(self) -> None:
        """Wait until nothing is waiting (while consuming), running, or due back (a retry copy
        on its way)."""
        while (
            (self._undelivered and not self._stopping.is_set())
            or len(self._ordered)
            or self._delayed
        ):
            await asyncio.sleep(IDLE_POLL_SECONDS)

    # -- the consumer side -----------------------------------------------------------------------

    async def run(self) -> None:
        """Hand messages to the pipeline until `stop_intake()`."""
        while not self._stopping.is_set():
            if not await self._before_stop(self._pipeline.intake.wait()):  # Conductor down
                return
            arrival = asyncio.ensure_future(self._inbox.get())
            if not await self._before_stop(arrival):
                return
            self._dispatch(arrival.result())
            while not self._inbox.empty():  # and all else waiting, as a fetch or prefetch does
                self._dispatch(self._inbox.get_nowait())

    async def _before_stop(self, awaitable: Any) -> bool:
        """Await; False (and cancelled) if `stop_intake()` came first."""
        work = asyncio.ensure_future(awaitable)
        stop = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if work.done():
            return True  # even if the stop came at once: the pipeline decides (a late job)
        work.cancel()
        return False

    def _dispatch(self, message: MemoryMessage) -> None:
        self._undelivered -= 1
        message.deliveries += 1
        job = self._pipeline.dispatch(MemoryDelivery(self, message, *self._event(message)))
        self._ordered.spawn(job.key, lambda: self._pipeline.run(job))

    def _event(self, message: MemoryMessage) -> tuple[Event, str | None]:
        body, body_error, error = read_body(message.raw, self._limits)
        kind: SourceKind = "kafka" if self.topic is not None else "amqp"
        event = Event(
            source=kind,
            raw=message.raw,
            body=body,
            body_error=body_error,
            headers=message.headers,
            key=message.key,
            topic=self.topic,
            partition=0 if self.topic is not None else None,
            offset=message.offset,
            queue=self.queue,
            routing_key=self.queue,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            timestamp=int(message.first_seen * 1000),
        )
        return event, error

    def stop_intake(self) -> None:
        """Take no more messages; those still in the source stay there (undelivered)."""
        self._stopping.set()

    async def drain(self, timeout: float) -> int:
        """Finish the work in flight within `timeout`; cancel what is left (it stays unsettled)
        and return how many that were."""
        cut = await self._ordered.drain(timeout)
        if cut:
            log.warning("%d in-memory deliveries unfinished at shutdown", cut)
        return cut

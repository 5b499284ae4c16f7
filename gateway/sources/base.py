"""The source contract, one shape for Kafka and AMQP, and per-key ordering shared by both.

A source turns broker messages into `Delivery` objects and hands each to the pipeline
(`Pipeline.dispatch`, then `Pipeline.run`); the pipeline decides how each delivery is settled,
exactly once, and calls one of its methods: `ack` (done: commit / basic.ack), `defer` (AMQP only:
try again later through a retry queue), `requeue` (AMQP only: give it back as a failed attempt)
or `release` (give it back untouched: the gateway is stopping). A delivery that is none of these
(the process stops first) is redelivered by the broker. `ack` and `defer` may raise
`gateway.errors.Abandoned` when the delivery can no longer be settled (its AMQP channel closed):
the broker redelivers it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from gateway.errors import EventError, GatewayError
from gateway.events import Event, parse_body
from gateway.settings import LimitSettings

log = logging.getLogger(__name__)

Work = Callable[[], Coroutine[Any, Any, None]]


class SourceUnavailable(GatewayError):
    """A broker could not be reached at start-up (the message names it and why)."""


class Delivery(Protocol):
    event: Event
    error: str | None  # why the message cannot be used at all (too big, not UTF-8)
    attempts: int  # attempts already made (carried by the AMQP retry header)
    first_seen: float  # epoch seconds of the first attempt
    suspect: bool  # may have been processed before: a redelivery or just after a restart
    defers: bool  # True: retries go through `defer`; False: the pipeline retries in place

    async def ack(self) -> None:
        """The delivery is done: its effect (or its dead letter) is durable."""

    async def defer(self, delay: float, attempts: int) -> None:
        """Try again after `delay` seconds as attempt `attempts + 1`; the original is acked.
        Raises PublishError when the retry copy was not confirmed (the original is untouched)."""

    async def requeue(self) -> None:
        """Give the delivery back as a failed attempt, to be delivered again (AMQP: basic.reject
        with requeue, which a quorum queue's delivery limit counts)."""

    async def release(self) -> None:
        """Give the delivery back untouched, not counted as an attempt (AMQP: basic.nack with
        requeue; Kafka: nothing to do, its offset stays uncommitted)."""


def read_event(
    read: Callable[[], tuple[Event, str | None]], bare: Callable[[], Event], where: str
) -> tuple[Event, str | None]:
    """The message as an event and why it is unusable (None: usable). A message that cannot
    even be read becomes its bare event with the reason as its error: the pipeline dead-letters
    it where it came from, instead of the source failing on it again and again."""
    try:
        return read()
    except Exception as exc:
        log.exception("cannot read a message from %s", where)
        return bare(), f"cannot read the message: {exc!r}"


def read_body(raw: bytes, limits: LimitSettings) -> tuple[Any, str | None, str | None]:
    """(body, body_error, error): the parsed body, why it is text rather than JSON, and why the
    message cannot be used at all (too large, not UTF-8: then there is no body)."""
    try:
        body, body_error = parse_body(
            raw, max_bytes=limits.max_message_bytes, max_depth=limits.max_json_depth
        )
    except EventError as exc:
        return None, str(exc), str(exc)
    return body, body_error, None


class Ordered:
    """Run coroutines concurrently across keys and one after another within a key.

    `None` as a key means "no ordering": the work runs at once, beside everything else. A key
    with work has one task that runs its queue in turn: a backlog of one key costs a queue entry
    per message, not a task per message waiting on the one before it (issue 18).
    """

    def __init__(self) -> None:
        self._queues: dict[str, deque[Work]] = {}  # a key with a running task: its next work
        self._queued = 0  # work waiting in the queues
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, key: str | None, work: Work) -> None:
        if key is not None:
            queue = self._queues.get(key)
            if queue is not None:
                queue.append(work)
                self._queued += 1
                return
            self._queues[key] = deque()
        task = asyncio.create_task(self._run(key, work))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run_here(self, key: str | None, work: Work) -> None:
        """Like `spawn`, but work that nothing orders (key None) runs in the calling task (a
        broker client's per-message task already), tracked for `drain` like a spawned one."""
        task = asyncio.current_task()
        if key is not None or task is None:
            self.spawn(key, work)
            return
        self.tasks.add(task)
        try:
            await work()
        except Exception:  # as in _run: logged, not raised into the broker client
            log.exception("work failed")
        finally:
            self.tasks.discard(task)

    async def _run(self, key: str | None, work: Work) -> None:
        try:
            while True:
                try:
                    await work()
                except Exception:  # its failure is its own: the key's next work still runs
                    log.exception("work of key %s failed", key)
                queue = self._queues.get(key) if key is not None else None
                if not queue:
                    return
                work = queue.popleft()
                self._queued -= 1
        finally:
            if key is not None:  # cancelled: the work still queued is dropped with the task
                self._queued -= len(self._queues.pop(key, ()))

    async def drain(self, timeout: float) -> int:
        """Wait up to `timeout` for all work; cancel what is left; return how many were cut."""
        pending = set(self.tasks)
        if not pending:
            return 0
        _done, left = await asyncio.wait(pending, timeout=timeout)
        cut = len(left) + self._queued
        for task in left:
            task.cancel()
        if left:
            await asyncio.wait(left)
        return cut if left else 0

    def __len__(self) -> int:
        """Work not finished: running and queued."""
        return len(self.tasks) + self._queued

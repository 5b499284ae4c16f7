"""The source contract, one shape for Kafka and AMQP, and per-key ordering shared by both.

A source turns broker messages into `Delivery` objects and hands each to the pipeline; the
pipeline settles each delivery exactly once, through `ack` (done: commit / basic.ack) or `defer`
(AMQP only: try again later through a retry queue). A delivery that is neither (the process
stops first) is redelivered by the broker. Both may raise `gateway.errors.Abandoned` when the
delivery can no longer be settled (its AMQP channel closed): the broker redelivers it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from gateway.errors import GatewayError
from gateway.events import Event

log = logging.getLogger(__name__)


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
        """Try again after `delay` seconds as attempt `attempts + 1`; the original is acked."""


class Ordered:
    """Run coroutines concurrently across keys and one after another within a key.

    `None` as a key means "no ordering": the work runs at once, beside everything else.
    """

    def __init__(self) -> None:
        self._tails: dict[str, asyncio.Task[None]] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, key: str | None, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        previous = self._tails.get(key) if key is not None else None
        task = asyncio.create_task(self._after(previous, work))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        if key is not None:
            self._tails[key] = task
            task.add_done_callback(functools.partial(self._forget, key))

    def _forget(self, key: str, task: asyncio.Task[None]) -> None:
        if self._tails.get(key) is task:
            del self._tails[key]

    @staticmethod
    async def _after(
        previous: asyncio.Task[None] | None, work: Callable[[], Awaitable[None]]
    ) -> None:
        if previous is not None:
            # The previous message of this key must settle first; its failure is its own.
            await asyncio.wait([previous])
        await work()

    async def drain(self, timeout: float) -> int:
        """Wait up to `timeout` for all work; cancel what is left; return how many were cut."""
        pending = set(self.tasks)
        if not pending:
            return 0
        _done, left = await asyncio.wait(pending, timeout=timeout)
        for task in left:
            task.cancel()
        if left:
            await asyncio.wait(left)
        return len(left)

    def __len__(self) -> int:
        return len(self.tasks)

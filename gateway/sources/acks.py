"""Acks of one AMQP channel, sent in as few frames as the order of its deliveries allows.

basic.ack with `multiple=True` acks every unacked delivery tag of the channel up to the one
named, so it may be sent only when every earlier tag is settled. Each delivery is `expect`ed
when it arrives; `ack` marks it ready (its effect is durable: the pipeline decided), `forget`
takes out one settled another way (rejected or nacked: the broker holds it no longer). Every
`interval` seconds the ready tags with nothing unsettled before them go as one ack; a ready tag
behind an unsettled one waits for it, at most `linger` seconds or until `hold` tags wait, then
goes on its own. Nothing is acked before the pipeline said so: only later than one by one.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Send = Callable[[int, bool], Awaitable[None]]  # (delivery tag, multiple)
_DONE = -1.0  # a tag already settled with the broker (forgotten, or acked on its own)


class Acks:
    def __init__(self, send: Send, *, hold: int, interval: float, linger: float) -> None:
        self._send = send
        self._hold = hold
        self._interval = interval
        self._linger = linger
        self._tags: list[int] = []  # a heap of the tags not yet passed
        self._ready: dict[int, float] = {}  # tag -> when it was acked (or _DONE)
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0  # when the timer fires
        self._sending: asyncio.Task[None] | None = None
        self._again = False  # a flush came due while one was sending
        self._closed = False
        self.waiting = 0  # ready tags behind an unsettled one

    def expect(self, tag: int) -> None:
        heapq.heappush(self._tags, tag)

    def ack(self, tag: int) -> None:
        self._ready[tag] = time.monotonic()
        self._wake(self._interval)

    def forget(self, tag: int) -> None:
        self._ready[tag] = _DONE
        self._wake(self._interval)  # it may have held back ready ones

    def _wake(self, delay: float) -> None:
        """Flush in `delay` seconds, unless a flush is due sooner already."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        if self._timer is not None:
            if self._due <= due:
                return
            self._timer.cancel()
        self._timer, self._due = loop.call_later(delay, self._fire), due

    def _fire(self) -> None:
        self._timer = None
        if self._sending is not None and not self._sending.done():
            self._again = True
            return
        self._sending = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        self._again = True
        while self._again:
            self._again = False
            await self.send(final=False)
        if self.waiting:  # come back when the oldest of them may have lingered enough
            self._wake(self._linger)

    async def close(self) -> None:
        """Send every ready ack now (the channel is about to close); no timer after this."""
        self._closed = True
        if self._sending is not None:
            await asyncio.wait([self._sending])
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.send(final=True)

    async def send(self, *, final: bool) -> None:
        """One ack for the ready tags at the front; the ones waiting behind an unsettled tag
        on their own if they have lingered (or `final`)."""
        last, count = self._front()
        if count:
            await self._try(last, count > 1, count)
        alone = self._overdue(final)
        for tag in alone:
            self._ready[tag] = _DONE
            await self._try(tag, False, 1)
        self.waiting = sum(1 for stamp in self._ready.values() if stamp != _DONE)

    def _front(self) -> tuple[int, int]:
        """Pass the settled tags at the front of the heap; the last ready one and how many."""
        last, count = 0, 0
        while self._tags and self._tags[0] in self._ready:
            tag = heapq.heappop(self._tags)
            if self._ready.pop(tag) != _DONE:
                last, count = tag, count + 1
        return last, count

    def _overdue(self, final: bool) -> list[int]:
        waiting = sorted(tag for tag, stamp in self._ready.items() if stamp != _DONE)
        if final or len(waiting) > self._hold:
            return waiting
        cutoff = time.monotonic() - self._linger
        return [tag for tag in waiting if self._ready[tag] <= cutoff]

    async def _try(self, tag: int, multiple: bool, count: int) -> None:
        try:
            await self._send(tag, multiple)
        except Exception as exc:  # the channel is gone: the broker redelivers, the store dedupes
            log.warning(
                "ack of %d deliveries failed (%s); they will be redelivered",
                count,
                type(exc).__name__,
            )

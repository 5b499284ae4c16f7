"""Per-rule rate limits: at most N calls in flight, at most M calls per interval.

A limited call waits its turn (it is not failed), so the source's in-flight window fills up and
intake pauses: the limit becomes back-pressure on the broker, not a pile of retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from gateway.plan import RateLimit


class _Limiter:
    def __init__(self, limit: RateLimit) -> None:
        self._limit = limit
        self._slots = asyncio.Semaphore(limit.max_concurrent) if limit.max_concurrent else None
        self._lock = asyncio.Lock()
        self._next_at = 0.0  # earliest time the next call may start (evenly spaced)

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        await self._pace()
        if self._slots is None:
            yield
            return
        async with self._slots:
            yield

    async def _pace(self) -> None:
        per = self._limit.max_per_interval
        if not per:
            return
        spacing = self._limit.interval_seconds / per
        async with self._lock:
            now = time.monotonic()
            wait = self._next_at - now
            self._next_at = max(now, self._next_at) + spacing
        if wait > 0:
            await asyncio.sleep(wait)


class RateLimits:
    """One limiter per rule name, created on first use."""

    def __init__(self) -> None:
        self._limiters: dict[str, _Limiter] = {}

    def hold(
        self, rule: str, limit: RateLimit | None
    ) -> contextlib.AbstractAsyncContextManager[None]:
        if limit is None:
            return contextlib.nullcontext()
        limiter = self._limiters.get(rule)
        if limiter is None:
            limiter = self._limiters[rule] = _Limiter(limit)
        return limiter.hold()

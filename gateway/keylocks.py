"""One asyncio.Lock per key, kept only while some task holds or awaits it.

The executor holds a start key while it looks up, starts and records; the Conductor client holds
a workflow id while it signals one of its tasks (two signals racing to one workflow would find
the same waiting task, and Conductor drops the second update without an error)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass(slots=True)
class _KeyLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    holders: int = 0  # tasks holding or waiting for the lock


class KeyLocks:
    """One asyncio.Lock per key, present only while some task holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[str, _KeyLock] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        entry = self._locks.setdefault(key, _KeyLock())
        entry.holders += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.holders -= 1
            if entry.holders == 0:
                del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)

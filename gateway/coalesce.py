"""Coalesced look-ups: many concurrent `get(key)` calls answered by one batched fetch.

Deliveries run concurrently, each asking the store (or Conductor) about its own key. Asked one
by one, every question is a thread hop or a round trip; here the questions asked while a fetch
is in flight (or in the same turn of the event loop) wait together and go out as ONE fetch.
Each answer is as fresh as a look-up made alone: a key is fetched only after its `get` was
called, so it sees everything committed before the call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Coalescer(Generic[K, V]):
    """`await coalescer.get(key)`: the value `fetch` returns for it, or None when absent."""

    def __init__(
        self,
        fetch: Callable[[Sequence[K]], Awaitable[Mapping[K, V]]],
        max_batch: int = 500,
        concurrency: int = 1,
    ) -> None:
        self._fetch = fetch
        self._max_batch = max_batch
        self._concurrency = concurrency
        self._waiting: dict[K, list[asyncio.Future[V | None]]] = {}
        self._runners: set[asyncio.Task[None]] = set()

    async def get(self, key: K) -> V | None:
        return await self.ask(key)

    def ask(self, key: K) -> asyncio.Future[V | None]:
        """The future answer for `key`, without waiting for it (cancel it if it no longer
        matters: the fetch still runs, its answer is dropped)."""
        future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        # A finished runner leaves the set only in its done callback, later: count live ones.
        if sum(not runner.done() for runner in self._runners) < self._concurrency:
            runner = asyncio.create_task(self._run(), name="coalesced-lookups")
            self._runners.add(runner)  # a strong reference while it runs
            runner.add_done_callback(self._runners.discard)
        return future

    async def _run(self) -> None:
        # Up to `concurrency` fetches at a time: keys asked for meanwhile form the next batch.
        while self._waiting:
            keys = list(self._waiting)[: self._max_batch]
            batch = {key: self._waiting.pop(key) for key in keys}
            try:
                found = await self._fetch(keys)
            except Exception as exc:  # every waiter of this batch gets the failure
                _settle(batch, {}, exc)
                continue
            except BaseException as exc:  # cancelled (closing): waiters must not hang
                _settle(batch, {}, exc)
                raise
            _settle(batch, found, None)


def _settle(
    batch: dict[K, list[asyncio.Future[V | None]]],
    found: Mapping[K, V],
    error: BaseException | None,
) -> None:
    for key, futures in batch.items():
        for future in futures:
            if future.done():  # the caller was cancelled
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(found.get(key))

"""A SQLite connection that lives in its own thread: `await conn.run(fn)` is one thread hop.

aiosqlite hops to its thread for every statement and every fetch, and each hop waits for the
interpreter while the event loop is busy: a transaction of five statements cost five waits.
Here a whole unit of work (a transaction, a batched look-up) is one plain function that runs
in the connection's thread, and the loop hears back once.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class SqliteThread:
    """One sqlite3 connection, used only from its one worker thread."""

    def __init__(self, path: Path, *, synchronous: str, name: str) -> None:
        self._path = path
        self._synchronous = synchronous
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._db: sqlite3.Connection | None = None

    async def open(self) -> None:
        await self.run_raw(self._connect)

    def _connect(self) -> None:
        self._db = self.sibling(busy_timeout_ms=5000)

    def sibling(self, *, busy_timeout_ms: int) -> sqlite3.Connection:
        """A new connection to the same file with the same settings, for the caller's thread."""
        try:
            db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise OSError(f"store.sqlite_path '{self._path}': cannot open: {exc}") from exc
        db.execute(f"PRAGMA synchronous={self._synchronous}")
        db.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        return db

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work(connection)` in the connection's thread; return what it returns."""
        return await self.run_raw(lambda: work(self._connection()))

    async def run_raw(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, work)

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the store is not open; use `async with SqliteStore(path)`")
        return self._db

    async def close(self) -> None:
        if self._db is not None:
            await self.run_raw(self._db.close)
            self._db = None
        self._pool.shutdown(wait=True)

"""SqliteStore write throughput: group commit with synchronous FULL vs NORMAL.

Run: .venv/bin/python bench/store.py [N]
Writes N record_start calls (each with an outbox row), first one at a time (each waits for its
own commit), then 256 at a time (what concurrent dispatch does), in a temporary directory.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from gateway.store.base import TrackRequest
from gateway.store.sqlite import SqliteStore

TRACK = TrackRequest("kafka:done", frozenset({"COMPLETED"}), "r", "kafka:t:0:1", "kafka:t")


async def run(path: Path, synchronous: str, n: int, concurrency: int) -> float:
    async with SqliteStore(path, synchronous=synchronous) as store:  # type: ignore[arg-type]
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with sem:
                await store.record_start(f"k{i}", f"wf-{i}", "r", TRACK)

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - start)


async def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    with tempfile.TemporaryDirectory() as tmp:
        for sync in ("FULL", "NORMAL"):
            for conc in (1, 256):
                count = n if conc > 1 else min(n, 1000)
                rate = await run(Path(tmp) / f"{sync}-{conc}.db", sync, count, conc)
                print(f"synchronous={sync:6} concurrency={conc:3}: {rate:8.0f} record_start/s")


if __name__ == "__main__":
    asyncio.run(main())

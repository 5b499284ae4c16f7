"""Store write throughput: SqliteStore's group commit (synchronous FULL vs NORMAL), and with
--postgres, PostgresStore's records/s and the round trips each batched operation costs.

Run: .venv/bin/python bench/store.py [N] [--postgres DSN [--rtt-ms MS]]
Writes N record_start calls (each with an outbox row), first one at a time (each waits for its
own commit), then 256 at a time (what concurrent dispatch does), in a temporary directory or,
with --postgres, in the database DSN names (new keys each run; `initdb` one for the purpose).
With --postgres it then sends 500 requests of each kind at once (one batch each) through a
loopback proxy that counts the round trips (tests/store/roundtrips.py); a warm-up batch of
each kind prepares the statements first. --rtt-ms delays each of the server's answers by MS
through that proxy, as a network between the gateway and PostgreSQL would (loopback: ~0.05).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.store.base import TrackRequest  # noqa: E402
from gateway.store.postgres import PostgresStore  # noqa: E402
from gateway.store.sqlite import SqliteStore  # noqa: E402
from tests.store.roundtrips import RoundTrips  # noqa: E402

TRACK = TrackRequest("kafka:done", frozenset({"COMPLETED"}), "r", "kafka:t:0:1", "kafka:t")
BATCH = 500  # the coalescers' largest batch
OWNER = "bench#1"


async def rate(store: Any, n: int, concurrency: int) -> str:
    """record_start/s of n new keys (each with an outbox row), `concurrency` at a time, and
    this process's CPU time per record (steadier than the rate on a machine others load)."""
    sem = asyncio.Semaphore(concurrency)
    run = uuid.uuid4().hex[:8]

    async def one(i: int) -> None:
        async with sem:
            await store.record_start(f"{run}-k{i}", f"wf-{run}-{i}", "r", TRACK)

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(i) for i in range(n)))
    per_second = n / (time.perf_counter() - start)
    cpu_us = (time.process_time() - cpu) / n * 1e6
    return f"{per_second:8.0f} record_start/s, {cpu_us:5.0f} us CPU each"


async def sqlite(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for sync in ("FULL", "NORMAL"):
            for conc in (1, 256):
                count = n if conc > 1 else min(n, 1000)
                path = Path(tmp) / f"{sync}-{conc}.db"
                async with SqliteStore(path, synchronous=sync) as store:  # type: ignore[arg-type]
                    got = await rate(store, count, conc)
                print(f"sqlite synchronous={sync:6} concurrency={conc:3}: {got}")


async def trips(counter: RoundTrips, ask: Callable[[int], Awaitable[object]]) -> int:
    """Round trips of BATCH requests asked in one turn of the event loop (one batch)."""
    before = counter.count
    await asyncio.gather(*(ask(i) for i in range(BATCH)))
    return counter.count - before


async def postgres(dsn: str, n: int, rtt_ms: float) -> None:
    async with RoundTrips(dsn, delay=rtt_ms / 1000).serving() as network:
        for conc in (1, 256):
            count = n if conc > 1 else min(n, 200 if rtt_ms else 1000)  # one at a time: slow
            # With --rtt-ms the proxy runs in this process: its CPU counts in "us CPU each".
            async with PostgresStore(network.dsn if rtt_ms else dsn) as store:
                got = await rate(store, count, conc)
            print(f"postgres rtt+{rtt_ms:g}ms concurrency={conc:3}: {got}")
    # One connection: the warm-up prepares its statements, so none is prepared while counting.
    async with (
        RoundTrips(dsn).serving() as counter,
        PostgresStore(counter.dsn, min_size=1, max_size=1) as store,
    ):
        await per_batch(store, counter)


async def per_batch(store: PostgresStore, counter: RoundTrips) -> None:
    run = uuid.uuid4().hex[:8]
    await trips(counter, lambda i: store.claim_start(f"warm-{run}{i}", OWNER, 30))
    await trips(counter, lambda i: store.record_start(f"warm-{run}{i}", "wf", "r", TRACK))
    await trips(counter, lambda i: store.find_start(f"warm-{run}{i}"))
    await store.due(1e12, BATCH)
    record = lambda i: store.record_start(f"{run}{i}", f"wf-{run}-{i}", "r", TRACK)  # noqa: E731
    for name, ask in (
        ("find_start (500 keys)", lambda i: store.find_start(f"{run}{i}")),
        ("claim_start (500 new keys)", lambda i: store.claim_start(f"{run}{i}", OWNER, 30)),
        ("record_start (500 new keys, tracked)", record),
        ("record_start (the same 500 again)", record),
    ):
        print(f"postgres round trips, {name:38}: {await trips(counter, ask)}")
    before = counter.count
    rows = await store.due(1e12, BATCH)
    print(f"postgres round trips, {f'due ({len(rows)} rows)':38}: {counter.count - before}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=5000, help="record_start calls")
    parser.add_argument("--postgres", metavar="DSN", help="measure PostgresStore on this DSN")
    parser.add_argument(
        "--rtt-ms", type=float, default=0.0, help="with --postgres: a network's round trip added"
    )
    args = parser.parse_args()
    if args.postgres:
        asyncio.run(postgres(args.postgres, args.n, args.rtt_ms))
    else:
        asyncio.run(sqlite(args.n))


if __name__ == "__main__":
    main()

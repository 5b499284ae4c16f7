"""Dev server throughput: start-workflow requests/s over real HTTP.

The server runs as `gateway dev conductor` in its own process; this process drives it with an
aiohttp client at a few concurrencies for a few seconds each. Baseline in the same run: a cheap
GET of a workflow definition through the same routes and middleware, so the ratio shows what
the engine's start costs on top of plain request handling.

    .venv/bin/python bench/devserver.py [--seconds 3] [--concurrency 1,16]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp

WF_DEF = {
    "name": "bench",
    "version": 1,
    "tasks": [{"name": "work", "taskReferenceName": "work", "type": "SIMPLE"}],
}


async def _server() -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "dev", "conductor", "--port", "0",
        "--log-level", "WARNING",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=10)
    match = re.search(rb"ready at (\S+)", line)
    assert match, line
    return proc, match.group(1).decode()


async def _measure(call: Callable[[], Awaitable[None]], concurrency: int, seconds: float) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await call()
            done += 1

    began = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return done / (time.perf_counter() - began)


async def main(seconds: float, concurrencies: list[int]) -> None:
    proc, url = await _server()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{url}/metadata/workflow", json=WF_DEF) as r:
                assert r.status == 200

            async def start() -> None:
                async with http.post(f"{url}/workflow/bench", json={"n": 1}) as r:
                    assert r.status == 200
                    await r.read()

            async def get_def() -> None:
                async with http.get(f"{url}/metadata/workflow/bench") as r:
                    assert r.status == 200
                    await r.read()

            print(f"{'concurrency':>11} {'GET def/s':>10} {'start/s':>9} {'ratio':>6}")
            for c in concurrencies:
                base = await _measure(get_def, c, seconds)
                starts = await _measure(start, c, seconds)
                print(f"{c:>11} {base:>10.0f} {starts:>9.0f} {starts / base:>6.2f}")
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", default="1,16")
    ns = parser.parse_args()
    asyncio.run(main(ns.seconds, [int(c) for c in ns.concurrency.split(",")]))

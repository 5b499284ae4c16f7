"""Dev server throughput: start-workflow requests/s over real HTTP, and how many workflows of
a fork-and-loop shape it starts and completes per second with workers.

The server runs as `gateway dev conductor` in its own process; this process drives it with an
aiohttp client at a few concurrencies for a few seconds each. Baseline in the same run: a cheap
GET of a workflow definition through the same routes and middleware, so the ratio shows what
the engine's start costs on top of plain request handling.

The fork-and-loop workflow is FORK [fa] [fb] -> JOIN -> DO_WHILE (2 iterations of fc): four
worker tasks and four system tasks per execution. `--workflows` of them are started (starts/s)
and then worked to completion by one batch-polling worker per task type (completed/s: from the
first poll until the last task update, which completes the last workflow).

    .venv/bin/python bench/devserver.py [--seconds 3] [--concurrency 1,16] [--workflows 2000]
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


FORK_LOOP_DEF = {
    "name": "bench_fork_loop",
    "version": 1,
    "tasks": [
        {"name": "fk", "taskReferenceName": "fk", "type": "FORK_JOIN", "forkTasks": [
            [{"name": "fa", "taskReferenceName": "fa"}],
            [{"name": "fb", "taskReferenceName": "fb"}],
        ]},
        {"name": "jn", "taskReferenceName": "jn", "type": "JOIN", "joinOn": ["fa", "fb"]},
        {"name": "lp", "taskReferenceName": "lp", "type": "DO_WHILE",
         "loopCondition": "if ($.lp['iteration'] < 2) { true; } else { false; }",
         "loopOver": [{"name": "fc", "taskReferenceName": "fc"}]},
    ],
}  # fmt: skip
WORKER_TASKS = {"fa": 1, "fb": 1, "fc": 2}  # tasks of each type per execution


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


async def _start_many(http: aiohttp.ClientSession, url: str, n: int, concurrency: int) -> float:
    """Start `n` fork-and-loop workflows; starts per second."""
    todo = iter(range(n))

    async def loop() -> None:
        for _ in todo:
            async with http.post(f"{url}/workflow/bench_fork_loop", json={}) as r:
                assert r.status == 200
                await r.read()

    began = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return n / (time.perf_counter() - began)


async def _work_all(http: aiohttp.ClientSession, url: str, n: int) -> float:
    """Work every task of `n` started workflows; completed workflows per second."""

    async def worker(task_type: str, total: int) -> None:
        done = 0
        while done < total:
            params = {"count": "100", "timeout": "100", "workerid": "bench"}
            async with http.get(f"{url}/tasks/poll/batch/{task_type}", params=params) as r:
                polled = await r.json() if r.status == 200 else []
            for task in polled:
                body = {
                    "taskId": task["taskId"],
                    "status": "COMPLETED",
                    "workflowInstanceId": task["workflowInstanceId"],
                    "outputData": {"ok": 1},
                }
                async with http.post(f"{url}/tasks", json=body) as r:
                    assert r.status == 200
                    await r.read()
            done += len(polled)

    began = time.perf_counter()
    await asyncio.gather(*(worker(t, k * n) for t, k in WORKER_TASKS.items()))
    return n / (time.perf_counter() - began)


async def _fork_loop(http: aiohttp.ClientSession, url: str, n: int, concurrency: int) -> None:
    async with http.post(f"{url}/metadata/workflow", json=FORK_LOOP_DEF) as r:
        assert r.status == 200
    starts = await _start_many(http, url, n, concurrency)
    completed = await _work_all(http, url, n)
    params = {"query": "workflowType = bench_fork_loop AND status = COMPLETED", "size": "1"}
    async with http.get(f"{url}/workflow/search", params=params) as r:
        finished = (await r.json())["totalHits"]
    assert finished >= n, f"only {finished} of {n} workflows completed"
    print(f"fork-and-loop ({n} workflows, start concurrency {concurrency}): "
          f"{starts:.0f} starts/s, {completed:.0f} completed workflows/s")  # fmt: skip


async def main(seconds: float, concurrencies: list[int], workflows: int) -> None:
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
            await _fork_loop(http, url, workflows, max(concurrencies))
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--workflows", type=int, default=2000)
    ns = parser.parse_args()
    asyncio.run(main(ns.seconds, [int(c) for c in ns.concurrency.split(",")], ns.workflows))

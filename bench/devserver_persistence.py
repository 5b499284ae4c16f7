"""What `gateway dev conductor --data FILE` costs: the same load on a server in memory and on
one writing through to SQLite.

For each mode the server runs as its own process. `--workflows` one-task workflows are started
at concurrency 16 (starts/s); then, with all of them RUNNING, `--gets` sequential GETs of one
workflow measure the latency every request pays (the write-through looks for changes after
each request); then each workflow's task is polled and completed (completions/s). With
`--data`, the server is then restarted on its file and the time until it is ready (loading
everything) is reported.

    .venv/bin/python bench/devserver_persistence.py [--workflows 2000] [--gets 300]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

WF_DEF = {
    "name": "bench",
    "version": 1,
    "tasks": [{"name": "work", "taskReferenceName": "work", "type": "SIMPLE"}],
}


async def _server(data: Path | None) -> tuple[asyncio.subprocess.Process, str, float]:
    began = time.monotonic()
    extra = ["--data", str(data)] if data else []
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "dev", "conductor", "--port", "0",
        "--log-level", "WARNING", *extra,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
    match = re.search(rb"ready at (\S+/api)", line)
    assert match, line
    return proc, match.group(1).decode(), time.monotonic() - began


async def _stop(proc: asyncio.subprocess.Process) -> None:
    proc.terminate()
    await proc.wait()


async def _gather(n: int, concurrency: int, call: object) -> float:
    began = time.monotonic()
    todo = iter(range(n))

    async def lane() -> None:
        for i in todo:
            await call(i)  # type: ignore[operator]

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return n / (time.monotonic() - began)


async def run(data: Path | None, workflows: int, gets: int) -> None:
    proc, url, _ = await _server(data)
    try:
        async with aiohttp.ClientSession(url + "/") as http:
            await (await http.post("metadata/workflow", json=WF_DEF)).read()
            ids: list[str] = []

            async def start(_: int) -> None:
                async with http.post("workflow", json={"name": "bench", "input": {}}) as r:
                    ids.append(await r.text())

            starts = await _gather(workflows, 16, start)
            latencies = []
            for _ in range(gets):
                began = time.perf_counter()
                async with http.get(f"workflow/{ids[0]}", params={"includeTasks": "false"}) as r:
                    await r.read()
                latencies.append((time.perf_counter() - began) * 1000)
            latencies.sort()

            async def work(_: int) -> None:
                async with http.get("tasks/poll/work", params={"workerid": "b"}) as r:
                    task = await r.json()
                body = {"taskId": task["taskId"], "workflowInstanceId": task["workflowInstanceId"],
                        "status": "COMPLETED", "outputData": {}}  # fmt: skip
                async with http.post("tasks", json=body) as r:
                    await r.read()

            completions = await _gather(workflows, 16, work)
    finally:
        await _stop(proc)
    mode = "--data" if data else "memory"
    p50, p99 = statistics.median(latencies), latencies[int(len(latencies) * 0.99) - 1]
    print(
        f"{mode:7} starts/s {starts:7.0f}  GET with {workflows} running: p50 {p50:.2f} ms "
        f"p99 {p99:.2f} ms  poll+complete/s {completions:6.0f}",
        flush=True,
    )
    if data:
        proc, _, ready = await _server(data)
        await _stop(proc)
        size = data.stat().st_size / 1e6
        print(f"restart on the file ({size:.1f} MB, {workflows} workflows): ready in {ready:.2f} s")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=2000)
    parser.add_argument("--gets", type=int, default=300)
    args = parser.parse_args()
    await run(None, args.workflows, args.gets)
    with tempfile.TemporaryDirectory() as tmp:
        await run(Path(tmp) / "conductor.sqlite", args.workflows, args.gets)


if __name__ == "__main__":
    asyncio.run(main())

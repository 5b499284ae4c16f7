"""What `gateway dev conductor --data FILE` costs: the same load on a server in memory and on
one writing through to SQLite.

For each mode the server runs as its own process. `--workflows` one-task workflows are started
at concurrency 16 (starts/s); then, with all of them RUNNING, sequential GETs of one workflow
for `--get-seconds` (longer than the write-through's 5 s full pass) show what a read waits
(p50, p99, max: a stall of the event loop shows in the max); then 200 sequential starts show
what one mutating request costs with that many workflows running; then each workflow's task
is polled and completed at concurrency 16 (completions/s). With
`--data`, the server is then restarted on its file and the time until it is ready (loading
everything) is reported.

    .venv/bin/python bench/devserver_persistence.py [--workflows 2000] [--get-seconds 6]
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


async def run(data: Path | None, workflows: int, get_seconds: float) -> None:
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
            until = time.monotonic() + get_seconds
            while time.monotonic() < until:
                began = time.perf_counter()
                async with http.get(f"workflow/{ids[0]}", params={"includeTasks": "false"}) as r:
                    await r.read()
                latencies.append((time.perf_counter() - began) * 1000)
            latencies.sort()
            one_start = []
            for _ in range(200):
                began = time.perf_counter()
                async with http.post("workflow", json={"name": "bench", "input": {}}) as r:
                    await r.read()
                one_start.append((time.perf_counter() - began) * 1000)
            one_start.sort()

            async def work(_: int) -> None:
                async with http.get("tasks/poll/work", params={"workerid": "b"}) as r:
                    task = await r.json()
                body = {"taskId": task["taskId"], "workflowInstanceId": task["workflowInstanceId"],
                        "status": "COMPLETED", "outputData": {}}  # fmt: skip
                async with http.post("tasks", json=body) as r:
                    await r.read()

            completions = await _gather(workflows + 200, 16, work)
    finally:
        await _stop(proc)
    mode = "--data" if data else "memory"
    print(
        f"{mode:7} starts/s {starts:6.0f}  poll+complete/s {completions:6.0f}  "
        f"with {workflows} running: GET {_spread(latencies)}; one start {_spread(one_start)}",
        flush=True,
    )
    if data:
        proc, _, ready = await _server(data)
        await _stop(proc)
        size = data.stat().st_size / 1e6
        print(f"restart on the file ({size:.1f} MB, {workflows} workflows): ready in {ready:.2f} s")


def _spread(ms: list[float]) -> str:
    p99 = ms[max(int(len(ms) * 0.99) - 1, 0)]
    return f"p50 {statistics.median(ms):.2f} p99 {p99:.2f} max {ms[-1]:.1f} ms"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=2000)
    parser.add_argument("--get-seconds", type=float, default=6.0)
    args = parser.parse_args()
    await run(None, args.workflows, args.get_seconds)
    with tempfile.TemporaryDirectory() as tmp:
        await run(Path(tmp) / "conductor.sqlite", args.workflows, args.get_seconds)


if __name__ == "__main__":
    asyncio.run(main())

"""Worker throughput: our `TaskRunner` against conductor-python's `TaskHandler`, same workflow,
same server, same run.

The workflow is four SIMPLE tasks in a row, one of each of four task types (the runner
test's shape). `--workflows` of them (default 250: 1,000 tasks) are started first; then one
runner works them all, 16 at a time per task type, and the clock runs from its start until the
last workflow completed ("wall", which includes starting the workers: conductor-python starts
a process per worker). "Steady" is measured by the server: from the moment the first task was
handed out to the end of the last workflow (tasks' startTime, workflows' endTime), which is the
number compared. Each side gets its own workflows (a fresh definition name per round).
The work itself is trivial (return a dict), so this measures the workers' overhead: polling,
reporting, scheduling.

- ours: `TaskRunner` in this process, four `@worker_task` async functions, `concurrency=16`
  (batch polls with long-poll, update-v2).
- conductor-python 2.0: `TaskHandler` with four `Worker`s, `thread_count=16`: one process per
  worker, each with 16 threads (batch polls, update-v2).

    .venv/bin/python bench/worker.py [--server real|dev|URL] [--workflows 250] [--rounds 2]

`--server real` (default) starts Conductor OSS 3.32.3 (about 15 s), `dev` the dev server, both
in their own process; a URL uses a running Conductor.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.conductor import ConductorClient, ConductorWorkflow, SimpleTask, TaskDef  # noqa: E402
from gateway.conductor.runner import TaskRunner  # noqa: E402
from gateway.conductor.worker import worker_task  # noqa: E402

TYPES = 4
CONCURRENCY = 16


def sdk_step(i):  # type: ignore[no-untyped-def]
    """conductor-python's worker function (module level: its worker processes import it).
    No annotations: under `from __future__ import annotations` they are strings, which the
    SDK's argument mapping passes to isinstance()."""
    return {"seen": i}


def our_workers(prefix: str) -> list[Any]:
    def make(n: int) -> Any:
        @worker_task(f"{prefix}{n}", concurrency=CONCURRENCY)
        async def step(i: int) -> dict[str, Any]:
            return {"seen": i}

        return step

    return [make(n) for n in range(TYPES)]


async def prepare(client: ConductorClient, prefix: str, count: int) -> list[str]:
    types = [f"{prefix}{n}" for n in range(TYPES)]
    defs = [TaskDef(name=t, retry_count=0, response_timeout_seconds=60) for t in types]
    await client.register_task_defs(defs)
    wf = ConductorWorkflow(f"{prefix}flow", version=1).timeout_seconds(0)
    for n, task_type in enumerate(types):
        wf >> SimpleTask(task_type, f"t{n}").input_parameter("i", wf.input("i"))
    await client.register_workflow(wf, overwrite=True)
    ids: list[str] = []
    for start in range(0, count, 50):
        batch = [client.start_workflow(wf.name, input={"i": i}) for i in range(start, start + 50)]
        ids += await asyncio.gather(*batch[: count - start])
    return ids


async def wait_completed(client: ConductorClient, ids: list[str]) -> None:
    pending = list(ids)
    gate = asyncio.Semaphore(8)

    async def done(wf_id: str) -> bool:
        async with gate:
            wf = await client.get_workflow(wf_id, include_tasks=False)
        if wf.terminal and wf.status != "COMPLETED":
            raise RuntimeError(f"workflow {wf_id} ended {wf.status}")
        return wf.terminal

    while pending:
        finished = await asyncio.gather(*(done(i) for i in pending))
        pending = [i for i, ok in zip(pending, finished, strict=True) if not ok]
        if pending:
            await asyncio.sleep(0.25)


async def served_seconds(client: ConductorClient, ids: list[str]) -> float:
    """First task handed out to last workflow ended, by the server's clock."""
    flows = await asyncio.gather(*(client.get_workflow(i) for i in ids))
    first = min(t.start_time or 0 for wf in flows for t in wf.tasks)
    last = max(wf.end_time or 0 for wf in flows)
    return (last - first) / 1000


async def run_ours(client: ConductorClient, prefix: str, ids: list[str]) -> float:
    runner = TaskRunner(client, our_workers(prefix))
    started = time.monotonic()
    task = asyncio.create_task(runner.run())
    await wait_completed(client, ids)
    elapsed = time.monotonic() - started
    runner.stop()
    await task
    return elapsed


async def run_sdk(client: ConductorClient, url: str, prefix: str, ids: list[str]) -> float:
    from conductor.client.automator.task_handler import TaskHandler
    from conductor.client.configuration.configuration import Configuration
    from conductor.client.worker.worker import Worker

    workers = [
        Worker(f"{prefix}{n}", sdk_step, poll_interval=100, thread_count=CONCURRENCY)
        for n in range(TYPES)
    ]
    handler = TaskHandler(
        workers=workers,
        configuration=Configuration(server_api_url=url),
        scan_for_annotated_workers=False,
        monitor_processes=False,
    )
    started = time.monotonic()
    handler.start_processes()
    try:
        await wait_completed(client, ids)
        return time.monotonic() - started
    finally:
        handler.stop_processes()


@contextlib.contextmanager
def server(choice: str) -> Iterator[str]:
    if choice.startswith("http"):
        yield choice
        return
    command = [sys.executable, "-m", "gateway", "dev", "conductor", "--port", "0"]
    if choice == "real":
        command.append("--real")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            found = re.search(r"ready at (http://\S+/api)", line)
            if found:
                yield found.group(1)
                return
        raise RuntimeError(f"{choice} Conductor did not start")
    finally:
        process.terminate()
        process.wait(60)


async def bench(url: str, count: int, rounds: int) -> None:
    tasks = count * TYPES
    results: dict[str, list[float]] = {"ours": [], "conductor-python": []}
    async with ConductorClient(url) as client:
        await client.wait_ready()
        for _ in range(rounds):
            for side, run in _sides(client, url).items():
                prefix = f"bw_{side[:3]}_{uuid.uuid4().hex[:6]}_"
                ids = await prepare(client, prefix, count)
                wall = await run(prefix, ids)
                steady = await served_seconds(client, ids)
                results[side].append(tasks / steady)
                print(
                    f"  {side:<17} {tasks} tasks: steady {steady:6.2f} s = "
                    f"{tasks / steady:7.1f} tasks/s (wall {wall:6.2f} s)"
                )
    ours, theirs = max(results["ours"]), max(results["conductor-python"])
    print(f"best: ours {ours:.1f} tasks/s, conductor-python {theirs:.1f} tasks/s")
    print(f"ratio ours / conductor-python: {ours / theirs:.2f}")


def _sides(client: ConductorClient, url: str) -> dict[str, Callable[[str, list[str]], Any]]:
    return {
        "ours": lambda prefix, ids: run_ours(client, prefix, ids),
        "conductor-python": lambda prefix, ids: run_sdk(client, url, prefix, ids),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="real", help="real, dev, or a Conductor API URL")
    parser.add_argument("--workflows", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with server(args.server) as url:
        print(
            f"{args.workflows} workflows x {TYPES} SIMPLE tasks, concurrency {CONCURRENCY} "
            f"per task type, against {args.server} ({url})"
        )
        asyncio.run(bench(url, args.workflows, args.rounds))


if __name__ == "__main__":
    main()

"""Tracker benchmark: N in-flight workflows on the dev server, completed by a worker over time.

Run: .venv/bin/python bench/tracker.py [--workflows 10000] [--complete-over 40]
     [--min-interval 0.5] [--max-interval 5] [--concurrency 16] [--batch-size 200]

Processes: the dev server (`gateway dev conductor`) and the worker each run in their own
process, so that this process holds what a gateway holds: the client, the SQLite store, the
tracker and a Kafka producer (Tansu). Reported:
- the tracker's request rate to Conductor (polls/s) and polls per workflow,
- this process's RSS (baseline after start-up, peak during tracking) and CPU seconds,
- completion-to-event latency: from the worker's task update (the workflow ends) to the
  broker's confirm of the CloudEvent, p50/p90/p99/max.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from gateway.conductor.client import ConductorClient
from gateway.devserver.brokers import Tansu
from gateway.plan import Destination
from gateway.settings import Settings, TrackerSettings
from gateway.sinks import Publisher
from gateway.store.base import TrackRequest
from gateway.store.sqlite import SqliteStore
from gateway.tracker import Tracker

TASK, FLOW = "bench_task", "bench_flow"


# -- the worker process ---------------------------------------------------------------------


async def worker(url: str, count: int, seconds: float, out: Path) -> None:
    """Complete `count` tasks evenly over `seconds`; write {workflow id: epoch s} to `out`."""
    done: dict[str, float] = {}
    start = time.time()
    async with ConductorClient(url, flavor="oss") as client:

        async def lane() -> None:
            while len(done) < count:
                due = start + seconds * len(done) / count
                if time.time() < due:
                    await asyncio.sleep(min(0.05, due - time.time()))
                    continue
                task = await client.poll_task(TASK, worker_id="bench")
                if task is None:
                    await asyncio.sleep(0.01)
                    continue
                wf = task.workflow_instance_id or ""
                await client.update_task(task.task_id, wf, "COMPLETED", {"ok": True})
                done[wf] = time.time()

        await asyncio.gather(*(lane() for _ in range(8)))
    out.write_text(json.dumps(done))


# -- the gateway side -----------------------------------------------------------------------


class TimedPublisher:
    """Records when the broker confirmed each workflow's event (the key is the workflow id)."""

    def __init__(self, inner: Publisher) -> None:
        self.inner = inner
        self.confirmed: dict[str, float] = {}

    async def publish(
        self,
        destination: Destination,
        body: bytes,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
        correlation_id: str | None = None,
        content_type: str = "application/json",
    ) -> None:
        await self.inner.publish(
            destination,
            body,
            key=key,
            headers=headers,
            correlation_id=correlation_id,
            content_type=content_type,
        )
        self.confirmed[key or ""] = time.time()


def rss_mib() -> float:
    text = Path("/proc/self/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else 0.0


def start_devserver() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "dev",
            "conductor",
            "--port",
            "0",
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"ready at (\S+)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"dev server did not start: {line!r}")
    return proc, match.group(1)


async def prepare(client: ConductorClient, n: int) -> tuple[list[str], float]:
    await client.register_task_defs(
        [{"name": TASK, "retryCount": 0, "responseTimeoutSeconds": 3600}]
    )
    await client.register_workflow_def(
        {
            "name": FLOW,
            "version": 1,
            "schemaVersion": 2,
            "tasks": [{"name": TASK, "taskReferenceName": "t", "type": "SIMPLE"}],
        },
        overwrite=True,
    )
    sem = asyncio.Semaphore(32)

    async def start(i: int) -> str:
        async with sem:
            return await client.start_workflow(FLOW, 1, {"i": i})

    began = time.perf_counter()
    ids = await asyncio.gather(*(start(i) for i in range(n)))
    return list(ids), n / (time.perf_counter() - began)


async def gateway_side(args: argparse.Namespace, url: str, bootstrap: str, tmp: Path) -> None:
    settings = Settings(kafka={"bootstrap_servers": [bootstrap], "enable_idempotence": False})
    tracker_settings = TrackerSettings(
        min_interval=args.min_interval,
        max_interval=args.max_interval,
        concurrency=args.concurrency,
        batch_size=args.batch_size,
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic("bench-done", 1, 1)])
    finally:
        await admin.close()
    async with ConductorClient(url, flavor="oss") as client:
        ids, start_rate = await prepare(client, args.workflows)
        print(f"started {len(ids)} workflows at {start_rate:.0f}/s")
        request = TrackRequest("kafka:bench-done", frozenset({"COMPLETED"}), "bench", "e", "s")
        async with SqliteStore(tmp / "bench.db", first_poll_delay=args.min_interval) as store:
            began = time.perf_counter()
            await asyncio.gather(
                *(store.record_start(f"k{i}", wf, "bench", request) for i, wf in enumerate(ids))
            )
            print(
                f"recorded {len(ids)} outbox rows at "
                f"{len(ids) / (time.perf_counter() - began):.0f}/s (group commit, FULL)"
            )
            done_file = tmp / "done.json"
            work = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    url,
                    str(args.workflows),
                    str(args.complete_over),
                    str(done_file),
                ]
            )
            await track(args, client, store, settings, tracker_settings, done_file, work)


async def track(
    args: argparse.Namespace,
    client: ConductorClient,
    store: SqliteStore,
    settings: Settings,
    tracker_settings: TrackerSettings,
    done_file: Path,
    work: subprocess.Popen[bytes],
) -> None:
    baseline = rss_mib()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    peak = baseline
    async with Publisher(settings) as inner:
        publisher = TimedPublisher(inner)
        began = time.perf_counter()
        async with Tracker(store, client, publisher, tracker_settings) as tracker:
            deadline = time.monotonic() + args.complete_over + 60
            while await store.pending_count() and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                peak = max(peak, rss_mib())
        elapsed = time.perf_counter() - began
    work.wait(timeout=30)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    completed = json.loads(done_file.read_text())
    latencies = sorted(
        publisher.confirmed[wf] - t for wf, t in completed.items() if wf in publisher.confirmed
    )
    report(
        args,
        tracker,
        elapsed,
        baseline,
        peak,
        cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime,
        latencies,
        await store.pending_count(),
    )


def report(
    args: argparse.Namespace,
    tracker: Tracker,
    elapsed: float,
    baseline: float,
    peak: float,
    cpu: float,
    latencies: list[float],
    pending: int,
) -> None:
    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0.0

    print(
        f"settings: min_interval={args.min_interval} max_interval={args.max_interval} "
        f"concurrency={args.concurrency} batch_size={args.batch_size}; "
        f"completions spread over {args.complete_over}s"
    )
    print(
        f"tracked {args.workflows} workflows for {elapsed:.1f}s: "
        f"{tracker.polls} polls = {tracker.polls / elapsed:.0f} requests/s to Conductor, "
        f"{tracker.polls / args.workflows:.1f} polls per workflow"
    )
    print(f"events confirmed: {tracker.published}; still pending: {pending}")
    print(
        f"RSS: {baseline:.0f} MiB after start-up, peak {peak:.0f} MiB during tracking "
        f"(ru_maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB); "
        f"CPU {cpu:.1f}s = {100 * cpu / elapsed:.0f}% of one core"
    )
    if latencies:
        print(
            f"completion-to-event latency: p50 {pct(0.5):.2f}s p90 {pct(0.9):.2f}s "
            f"p99 {pct(0.99):.2f}s max {latencies[-1]:.2f}s "
            f"(mean {statistics.fmean(latencies):.2f}s, n={len(latencies)})"
        )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _, _, url, count, seconds, out = sys.argv
        asyncio.run(worker(url, int(count), float(seconds), Path(out)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=10_000)
    parser.add_argument("--complete-over", type=float, default=40.0)
    parser.add_argument("--min-interval", type=float, default=0.5)
    parser.add_argument("--max-interval", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=200)
    args = parser.parse_args()
    broker = Tansu()
    broker.start()
    server, url = start_devserver()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(gateway_side(args, url, broker.bootstrap, Path(tmp)))
    finally:
        server.terminate()
        server.wait(timeout=10)
        broker.stop()


if __name__ == "__main__":
    main()

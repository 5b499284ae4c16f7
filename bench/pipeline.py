"""The gateway against a bare consume-and-call loop, per core, on the same events (issue 18).

Run: .venv/bin/python bench/pipeline.py [--events N] [--runs R] [--sources kafka|amqp|both]
     [--latency] [--soak]

- A stand-in Conductor runs in its own process (a raw asyncio HTTP/1.1 server): it answers
  `POST /api/workflow` with an id and every GET with an empty list, and counts calls. Rates are
  taken where the calls land: (calls - 1) / (last call - first call).
- Kafka (Tansu): N events are produced to a 4-partition topic first (a backlog). A bare loop
  (aiokafka `getmany`, 64 concurrent aiohttp POSTs, `commit`) consumes them in one consumer
  group, then `gateway run` (a subprocess with a config file and one start rule, store on:
  SQLite, synchronous=FULL) consumes the same topic in another group.
- AMQP (RabbitMQ): N persistent messages in a durable queue; a bare aio-pika loop (prefetch 64,
  one task per message, ack after the call) vs the gateway, each on its own copy of the events.
- The consumer under test (bare loop or gateway) is pinned to core 0 with taskset; brokers,
  stand-in and this driver to core 1. The figures are per core.
- --latency: events produced at a steady 50% of the gateway's measured maximum (or --rate),
  the same rate for both loops, for 5 s of warm-up (not counted) then --latency-seconds (25);
  latency = call received at the stand-in - time written into the event as it is handed to the
  producer, so the producer's own lateness is not counted (it is reported: a late producer
  sends a burst); p50/p99/max for the bare loop and the gateway, on Tansu and Apache Kafka.
  Both consume with the gateway's default fetch wait (gateway/sources/kafka_config.py).
- --soak: --soak-events (1,000,000) through the gateway at that rate on Tansu, the store's
  purge every 10 s with --retention; its RSS, the store's files, dedupe rows and free pages
  sampled every 10 s, and a summary (for the note; not for CI).

Results go to bench/pipeline.txt by hand (copy the output).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

import gateway.sinks  # noqa: F401  (first: importing kafka_config first is a cycle)
from gateway.devserver.brokers import RabbitMQ, Tansu, free_port
from gateway.devserver.realservers import ApacheKafka
from gateway.sources.kafka_config import FETCH_MAX_WAIT_MS

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CONSUMER_CORE = "0"  # the bare loop or the gateway
SERVICE_CORE = "1"  # brokers, the stand-in, this driver
PARTITIONS = 4
CONCURRENCY = 64
WARMUP_SECONDS = 5.0  # --latency: produced at the same rate first, not counted
T_FIELD = re.compile(rb'"t":\s*([0-9.]+)')

# -- the stand-in Conductor ----------------------------------------------------------------


@dataclass
class Tally:
    count: int = 0
    first: float = 0.0
    last: float = 0.0
    stamps: list[tuple[float, float]] = field(default_factory=list)  # (produced, received)

    def reset(self) -> None:
        self.count, self.first, self.last, self.stamps = 0, 0.0, 0.0, []

    def call(self, body: bytes) -> None:
        now = time.time()
        if not self.count:
            self.first = now
        self.count += 1
        self.last = now
        match = T_FIELD.search(body)
        if match:
            self.stamps.append((float(match.group(1)), now))


class StandIn(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, just enough for aiohttp and the gateway's client."""

    tally = Tally()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            self.transport.write(self.answer(head.split(" ", 2), body))

    def answer(self, request: list[str], body: bytes) -> bytes:
        method, path = request[0], request[1]
        path = path.partition("?")[0]
        if method == "POST" and path.endswith("/correlated"):
            return _response(b"{}", "application/json")  # no workflow of these ids yet
        if method == "POST" and path == "/api/workflow":
            self.tally.call(body)
            return _response(uuid.uuid4().hex.encode(), "text/plain")
        if path == "/stats":
            tally = self.tally
            stats = {"count": tally.count, "first": tally.first, "last": tally.last}
            if "lat" in request[1]:
                stats["stamps"] = tally.stamps  # type: ignore[assignment]
            if "reset" in request[1]:
                tally.reset()
            return _response(json.dumps(stats).encode(), "application/json")
        return _response(b"[]", "application/json")


def _response(body: bytes, content_type: str) -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


async def serve_stand_in(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(StandIn, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


async def stats(url: str, query: str = "") -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/stats{query}") as resp:
        result: dict[str, Any] = await resp.json()
        return result


async def wait_calls(url: str, n: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        current = await stats(url)
        if current["count"] >= n or time.monotonic() > deadline:
            return current
        await asyncio.sleep(0.05)


def rate(current: dict[str, Any]) -> float:
    span = current["last"] - current["first"]
    return (current["count"] - 1) / span if span > 0 else 0.0


# -- the bare loops (run in their own process) -------------------------------------------


def start_body(value: bytes, correlation_id: str) -> dict[str, Any]:
    return {"name": "bench", "input": json.loads(value), "correlationId": correlation_id}


async def bare_kafka(bootstrap: str, topic: str, group: str, conductor: str) -> None:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,  # the gateway's default: the same fetch pacing
    )
    await consumer.start()
    limit = asyncio.Semaphore(CONCURRENCY)
    try:
        async with aiohttp.ClientSession() as http:

            async def call(record: Any) -> None:
                cid = f"{record.topic}/{record.partition}@{record.offset}"
                async with (
                    limit,
                    http.post(f"{conductor}/workflow", json=start_body(record.value, cid)) as resp,
                ):
                    await resp.read()

            while True:
                batch = await consumer.getmany(timeout_ms=200)
                records = [r for rs in batch.values() for r in rs]
                if records:
                    await asyncio.gather(*(call(r) for r in records))
                    await consumer.commit()
    finally:
        await consumer.stop()


async def bare_amqp(url: str, queue_name: str, conductor: str) -> None:
    connection = await aio_pika.connect_robust(url)
    async with connection, aiohttp.ClientSession() as http:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=CONCURRENCY)
        queue = await channel.declare_queue(queue_name, durable=True)
        tasks: set[asyncio.Task[None]] = set()

        async def handle(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            body = start_body(message.body, message.message_id or "")
            async with http.post(f"{conductor}/workflow", json=body) as resp:
                await resp.read()
            await message.ack()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            task = asyncio.create_task(handle(message))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        await queue.consume(on_message)
        await asyncio.Future()


# -- producing -----------------------------------------------------------------------------


def event(i: int, stamp: bool) -> bytes:
    body: dict[str, Any] = {"id": f"e{i}", "sku": f"sku-{i % 97}", "qty": i % 5 + 1}
    if stamp:
        body["t"] = time.time()
    return json.dumps(body).encode()


async def create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    kafka = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=2)
    await kafka.start()
    try:
        yield kafka
    finally:
        await kafka.stop()


async def fill_kafka(bootstrap: str, topic: str, n: int) -> None:
    async with producer(bootstrap) as kafka:
        sent = [
            await kafka.send(topic, event(i, False), key=f"k{i % 257}".encode()) for i in range(n)
        ]
        await asyncio.gather(*sent)


async def fill_amqp(url: str, queue: str, n: int, stamp: bool = False) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue, durable=True)
        for start in range(0, n, 500):
            await asyncio.gather(
                *(
                    channel.default_exchange.publish(
                        aio_pika.Message(
                            event(i, stamp),
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            message_id=f"m{i}",
                            content_type="application/json",
                        ),
                        routing_key=queue,
                    )
                    for i in range(start, min(n, start + 500))
                )
            )


async def produce_steady(
    bootstrap: str,
    topic: str,
    per_second: float,
    seconds: float,
    late: list[float] | None = None,
    *,
    stamp: bool = True,
) -> int:
    """Produce round(seconds * per_second) events at a steady rate (in 10 ms steps). `late` gets
    each event's lateness (ms) behind its due time, begin + i / per_second: the driver shares a
    core with the brokers, and a late producer sends a burst, which is not the consumer's fault."""
    sent, total = 0, round(seconds * per_second)
    async with producer(bootstrap) as kafka:
        begin = time.monotonic()
        while sent < total:
            due = min(total, int((time.monotonic() - begin) * per_second)) - sent
            for _ in range(due):
                if late is not None:
                    late.append((time.monotonic() - begin - sent / per_second) * 1000)
                await kafka.send(topic, event(sent, stamp), key=f"k{sent % 257}".encode())
                sent += 1
            await asyncio.sleep(0.01)
        await kafka.flush()
    return sent


# -- the processes under test --------------------------------------------------------------


def pinned(core: str, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            ["taskset", "-c", core, *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def ended(process: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    """SIGTERM (the gateway drains and commits), then SIGKILL after `grace`."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


@dataclass
class Stack:
    tmp: Path
    conductor: str  # the stand-in's API base (…/api)
    tansu: str
    rabbit: str
    kafka: str | None = None  # Apache Kafka, for --latency

    def gateway(self, name: str, bootstrap: str, source: str, **store: Any) -> list[str]:
        """`gateway run` argv with its config file and one start rule."""
        rules = self.tmp / f"{name}.rules.yaml"
        rules.write_text(
            "version: 1\nrules:\n  - name: start\n"
            f"    source: {{{source}}}\n"
            '    start_workflow: {name: bench, input: "${body}"}\n'
        )
        config = {
            "kafka": {
                "bootstrap_servers": bootstrap,
                "group_id": name,
                "enable_idempotence": False,
            },
            "amqp": {"url": self.rabbit},
            "conductor": {"url": self.conductor, "flavor": "oss"},
            "store": {"sqlite_path": str(self.tmp / f"{name}.db"), **store},
            "admin": {"port": 0},
            "rules_file": str(rules),
        }
        path = self.tmp / f"{name}.yaml"
        path.write_text(json.dumps(config))  # JSON is YAML
        return [str(ROOT / ".venv/bin/gateway"), "run", "--config", str(path)]

    def bare(self, *args: str) -> list[str]:
        return [PYTHON, str(Path(__file__).resolve()), *args, "--conductor", self.conductor]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (taskset execs: the pid is the consumer's)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Measured:
    rate: float  # events/s at the stand-in, first call to last
    cpu_us: float  # the consumer's CPU microseconds per event over the same span


async def measure(stack: Stack, argv: list[str], n: int, log: str) -> Measured:
    """Run one consumer over the prepared events: events/s at the stand-in, and the consumer's
    CPU time per event (start-up excluded), which other load on the machine hardly moves."""
    base = stack.conductor.removesuffix("/api")
    await stats(base, "?reset")
    process = pinned(CONSUMER_CORE, argv, stack.tmp / f"{log}.log")
    try:
        first = await wait_calls(base, 1, timeout=120)
        cpu_start, calls_start = cpu_seconds(process.pid), first["count"]
        current = await wait_calls(base, n, timeout=600)
        cpu_end = cpu_seconds(process.pid)
    finally:
        await asyncio.to_thread(ended, process)
    if current["count"] < n:
        raise SystemExit(f"{log}: only {current['count']} of {n} calls; see {stack.tmp}/{log}.log")
    per_event = (cpu_end - cpu_start) / max(1, current["count"] - calls_start) * 1e6
    return Measured(rate(current), per_event)


async def throughput(stack: Stack, n: int, sources: str) -> dict[str, Measured]:
    tag = uuid.uuid4().hex[:6]
    result: dict[str, Measured] = {}
    if sources in ("kafka", "both"):
        result.update(await throughput_kafka(stack, n, tag))
    if sources in ("amqp", "both"):
        result.update(await throughput_amqp(stack, n, tag))
    return result


async def throughput_kafka(stack: Stack, n: int, tag: str) -> dict[str, Measured]:
    topic = f"bench-{tag}"
    await create_topic(stack.tansu, topic)
    await fill_kafka(stack.tansu, topic, n)
    bare = stack.bare("--bare-kafka", stack.tansu, topic, f"bare-{tag}")
    result = {"kafka bare": await measure(stack, bare, n, f"bare-kafka-{tag}")}
    gateway = stack.gateway(f"gw-{tag}", stack.tansu, f"topic: {topic}")
    result["kafka gateway"] = await measure(stack, gateway, n, f"gw-kafka-{tag}")
    return result


async def throughput_amqp(stack: Stack, n: int, tag: str) -> dict[str, Measured]:
    result: dict[str, Measured] = {}
    await fill_amqp(stack.rabbit, f"bare-{tag}", n)
    await fill_amqp(stack.rabbit, f"gw-{tag}", n)
    bare = stack.bare("--bare-amqp", stack.rabbit, f"bare-{tag}")
    result["amqp bare"] = await measure(stack, bare, n, f"bare-amqp-{tag}")
    gateway = stack.gateway(f"gwa-{tag}", stack.tansu, f"queue: gw-{tag}")
    result["amqp gateway"] = await measure(stack, gateway, n, f"gw-amqp-{tag}")
    return result


@dataclass(frozen=True)
class Latency:
    """Produced -> called (ms) over the counted events, and the producer's own lateness."""

    p50: float
    p99: float
    worst: float
    count: int
    late_p99: float  # the producer behind its schedule (ms): a burst it sent, not a delay
    load: float  # the machine's 1-minute load average when the run ended

    @classmethod
    def of(cls, latencies: list[float], late: list[float]) -> Latency:
        cuts = statistics.quantiles(latencies, n=100)
        load = os.getloadavg()[0]
        return cls(cuts[49], cuts[98], max(latencies), len(latencies), _p99(late), load)

    def line(self, broker: str, who: str, per_second: float) -> str:
        return (
            f"latency {broker:12s} {who:7s} at {per_second:5.0f}/s: p50 {self.p50:6.1f} ms  "
            f"p99 {self.p99:6.1f} ms  max {self.worst:6.1f} ms  ({self.count} events; "
            f"producer late p99 {self.late_p99:.1f} ms; load {self.load:.1f})"
        )


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) > 1 else 0.0


async def latency_of(
    stack: Stack, bootstrap: str, argv_of: Any, per_second: float, seconds: float
) -> Latency:
    """Produced -> called at a steady `per_second` for WARMUP_SECONDS + `seconds`; the events
    produced in the warm-up (the consumer's first fetches, its connection pool filling) are
    not counted."""
    tag = uuid.uuid4().hex[:6]
    topic = f"lat-{tag}"
    await create_topic(bootstrap, topic)
    base = stack.conductor.removesuffix("/api")
    log = stack.tmp / f"lat-{tag}.log"
    process = pinned(CONSUMER_CORE, argv_of(topic, tag), log)
    late: list[float] = []
    try:
        await stats(base, "?reset")
        async with producer(bootstrap) as kafka:  # until the consumer is assigned and calls
            deadline = time.monotonic() + 90
            while (await stats(base))["count"] == 0 and time.monotonic() < deadline:
                await kafka.send_and_wait(topic, event(0, False), key=b"warm")
                await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)
        await stats(base, "?reset")
        counted_from = time.time() + WARMUP_SECONDS
        sent = await produce_steady(bootstrap, topic, per_second, WARMUP_SECONDS + seconds, late)
        await wait_calls(base, sent, timeout=60)
        stamps = (await stats(base, "?lat"))["stamps"]
    finally:
        await asyncio.to_thread(ended, process)
    latencies = [(called - made) * 1000 for made, called in stamps if made >= counted_from]
    if len(stamps) < sent or len(latencies) < 100:
        raise SystemExit(f"latency: {len(stamps)} of {sent} events called; see {log}")
    return Latency.of(latencies, late[int(WARMUP_SECONDS * per_second) :])


async def latency(stack: Stack, per_second: float, seconds: float) -> None:
    """The bare loop, then the gateway, on each broker; prints as it goes."""
    brokers = [("Tansu", stack.tansu)] + ([("Apache Kafka", stack.kafka)] if stack.kafka else [])
    for name, bootstrap in brokers:
        bare = await latency_of(
            stack,
            bootstrap,
            lambda topic, tag, b=bootstrap: stack.bare("--bare-kafka", b, topic, f"lb-{tag}"),
            per_second,
            seconds,
        )
        print(bare.line(name, "bare", per_second), flush=True)
        gateway = await latency_of(
            stack,
            bootstrap,
            lambda topic, tag, b=bootstrap: stack.gateway(f"lg-{tag}", b, f"topic: {topic}"),
            per_second,
            seconds,
        )
        print(gateway.line(name, "gateway", per_second), flush=True)
        print(f"latency {name:12s} gateway p99 - bare p99 {gateway.p99 - bare.p99:+.1f} ms")


def rss_mib(pid: int) -> float:
    """Resident memory of the process and its children (taskset execs, so one process)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass(frozen=True)
class Sample:
    """One --soak sample: the gateway's memory and its store."""

    at: float  # seconds since production began
    calls: int
    rss: float  # MiB
    store: float  # MiB: the database file, its WAL and its shared-memory index
    rows: int  # dedupe records (starts) in the store
    free: int  # free pages in the database file (reused before the file grows)

    def line(self) -> str:
        return (
            f"  {self.at:6.0f}s  calls {self.calls:8d}  RSS {self.rss:6.1f} MiB  store "
            f"{self.store:6.1f} MiB  rows {self.rows:7d}  free pages {self.free:6d}"
        )


def store_mib(path: Path) -> float:
    files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
    return sum(f.stat().st_size for f in files if f.exists()) / 2**20


def store_rows(path: Path) -> tuple[int, int]:
    """Dedupe records and free pages, read beside the gateway (WAL: a reader never blocks it)."""
    if not path.exists():
        return 0, 0
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
        rows = db.execute("SELECT COUNT(*) FROM starts").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
    return int(rows), int(free)


async def soak(stack: Stack, per_second: float, total: int, retention: float) -> list[Sample]:
    """`total` events through the gateway at `per_second`, with the store's purge every 10 s;
    its RSS and store sampled every 10 s until every event was called (or twice the planned
    time has passed)."""
    tag = uuid.uuid4().hex[:6]
    topic = f"soak-{tag}"
    await create_topic(stack.tansu, topic)
    name = f"soak-{tag}"
    argv = stack.gateway(
        name, stack.tansu, f"topic: {topic}", retention_seconds=retention, purge_interval_seconds=10
    )
    process = pinned(CONSUMER_CORE, argv, stack.tmp / f"{name}.log")
    print(f"soak: {total} events at {per_second:.0f}/s, store retention {retention:g}s", flush=True)
    base, db = stack.conductor.removesuffix("/api"), stack.tmp / f"{name}.db"
    await stats(base, "?reset")
    samples: list[Sample] = []
    try:
        feeding = asyncio.create_task(
            produce_steady(stack.tansu, topic, per_second, total / per_second, stamp=False)
        )
        begin = time.monotonic()
        while not feeding.done() or not samples or samples[-1].calls < feeding.result():
            await asyncio.sleep(10)
            rows, free = await asyncio.to_thread(store_rows, db)
            calls = (await stats(base))["count"]
            at = time.monotonic() - begin
            samples.append(Sample(at, calls, rss_mib(process.pid), store_mib(db), rows, free))
            print(samples[-1].line(), flush=True)
            if at > 2 * total / per_second + 120:
                break
        await feeding
    finally:
        await asyncio.to_thread(ended, process)
    print(soak_summary(samples, feeding.result(), retention), flush=True)
    return samples


def soak_summary(samples: list[Sample], sent: int, retention: float) -> str:
    """RSS from the first minute on (start-up excluded), and the store once the purge keeps
    up (after the first `retention` + 30 s): flat and bounded are read from these."""
    settled = [s for s in samples if s.at >= 60] or samples
    purged = [s for s in samples if s.at >= retention + 30] or samples[-1:]
    rss = [s.rss for s in settled]
    store = [s.store for s in purged]
    return (
        f"soak: {samples[-1].calls} of {sent} events called in {samples[-1].at:.0f}s; "
        f"RSS {settled[0].rss:.1f} MiB at {settled[0].at:.0f}s, {min(rss):.1f}-{max(rss):.1f} "
        f"MiB after ({(max(rss) / settled[0].rss - 1) * 100:+.1f}%); store from "
        f"{purged[0].at:.0f}s on {min(store):.1f}-{max(store):.1f} MiB, dedupe rows "
        f"{min(s.rows for s in purged)}-{max(s.rows for s in purged)}; load "
        f"{os.getloadavg()[0]:.1f}"
    )


# -- the driver ----------------------------------------------------------------------------


@contextlib.contextmanager
def services(
    port: int, latency_on: bool
) -> Iterator[tuple[str, str, str | None, subprocess.Popen[bytes]]]:
    """Tansu, RabbitMQ (and Apache Kafka), and the stand-in, on the service core."""
    os.sched_setaffinity(0, {int(SERVICE_CORE)})  # children inherit the service core
    stand_in = subprocess.Popen(
        [PYTHON, str(Path(__file__).resolve()), "--stand-in", str(port)],
        start_new_session=True,
    )
    started: list[Any] = []
    try:
        tansu, rabbit = Tansu(), RabbitMQ()
        for server in (tansu, rabbit):
            server.start()
            started.append(server)
        kafka = None
        if latency_on:
            kafka = ApacheKafka()
            kafka.start()
            started.append(kafka)
        yield tansu.bootstrap, rabbit.url, kafka.bootstrap if kafka else None, stand_in
    finally:
        for server in reversed(started):
            server.stop()
        ended(stand_in, 5)


async def drive(args: argparse.Namespace) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp,
        services(args.port, args.latency) as (tansu, rabbit, kafka, _),
    ):
        stack = Stack(Path(tmp), f"http://127.0.0.1:{args.port}/api", tansu, rabbit, kafka)
        await wait_stand_in(stack.conductor.removesuffix("/api"))
        print(
            f"events: {args.events} per consumer ({PARTITIONS} partitions, 257 keys); "
            f"consumer on core {CONSUMER_CORE}, brokers and stand-in on core {SERVICE_CORE}"
        )
        gateway_max = 0.0
        for run in range(1, args.runs + 1):
            result = await throughput(stack, args.events, args.sources)
            print(f"run {run}: {report(result)}", flush=True)
            if "kafka gateway" in result:
                gateway_max = max(gateway_max, result["kafka gateway"].rate)
        rate_half = args.rate or gateway_max / 2
        if args.latency:
            await latency(stack, rate_half, args.latency_seconds)  # prints as it goes
        if args.soak:
            await soak(stack, rate_half, args.soak_events, args.retention)  # prints as it goes


def report(result: dict[str, Measured]) -> str:
    """`kafka bare N/s gateway N/s ratio R, CPU B/G us/event per-core ratio C | amqp ...`: the
    wall-clock ratio, and the ratio of CPU time per event (what one dedicated core would give
    when both are CPU-bound; steadier than wall clock on a shared machine)."""
    parts = []
    for source in ("kafka", "amqp"):
        if f"{source} bare" in result:
            bare, gateway = result[f"{source} bare"], result[f"{source} gateway"]
            parts.append(
                f"{source} bare {bare.rate:6.0f}/s gateway {gateway.rate:6.0f}/s ratio "
                f"{gateway.rate / bare.rate:.2f}, CPU {bare.cpu_us:.0f}/{gateway.cpu_us:.0f} "
                f"us/event per-core ratio {bare.cpu_us / gateway.cpu_us:.2f}"
            )
    return " | ".join(parts)


async def wait_stand_in(base: str) -> None:
    for _ in range(100):
        with contextlib.suppress(aiohttp.ClientError):
            await stats(base)
            return
        await asyncio.sleep(0.1)
    raise SystemExit("the stand-in Conductor did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--sources",
        choices=("kafka", "amqp", "both"),
        default="both",
        help="which throughput comparisons to run (default both)",
    )
    parser.add_argument("--latency", action="store_true", help="p50/p99 at half load")
    parser.add_argument("--soak", action="store_true", help="1M events, RSS every 10 s")
    parser.add_argument(
        "--latency-seconds",
        type=float,
        default=25.0,
        dest="latency_seconds",
        help=f"--latency: seconds of counted production, after {WARMUP_SECONDS:g} s of warm-up",
    )
    parser.add_argument("--rate", type=float, default=0.0, help="events/s for --latency/--soak")
    parser.add_argument("--retention", type=float, default=120.0, help="--soak store retention")
    parser.add_argument("--soak-events", type=int, default=1_000_000, dest="soak_events")
    parser.add_argument("--stand-in", type=int, dest="stand_in", help=argparse.SUPPRESS)
    parser.add_argument("--bare-kafka", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--bare-amqp", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--conductor", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stand_in:
        asyncio.run(serve_stand_in(args.stand_in))
    elif args.bare_kafka:
        bootstrap, topic, group = args.bare_kafka
        asyncio.run(bare_kafka(bootstrap, topic, group, args.conductor))
    elif args.bare_amqp:
        url, queue = args.bare_amqp
        asyncio.run(bare_amqp(url, queue, args.conductor))
    else:
        # `timeout` or Ctrl-C: leave through the finally blocks that stop the servers
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        args.port = free_port()
        asyncio.run(drive(args))


if __name__ == "__main__":
    main()

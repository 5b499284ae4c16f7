"""Several replicas, effectively once across processes (issue 14), proven by killing them.

Three `gateway run` processes share one PostgreSQL store (reached through a TCP proxy), one
Kafka consumer group on an 8-partition topic and one RabbitMQ queue. About a third of the
events share a business key with two others, on other partitions and on the queue; the rest
have a key of their own. While they are processed, one replica is `kill -9`ed every few
seconds and restarted under its replica id, and PostgreSQL is cut off for 10 s.

Counted at the end, on the (dev) Conductor server and on the completion topic:
- every business key has exactly one workflow on the server, the one the store recorded (a
  duplicate the gateway undid would show as a second, terminated one: none is expected);
- every recorded workflow's completion event was published at least once, with one id;
- the outbox is empty.

The event count is `GATEWAY_REPLICAS_EVENTS` and the settle deadline `GATEWAY_REPLICAS_DEADLINE`
(defaults below: what fits a CI run on two cores); the durations and counts of a run are printed
(pytest -s) for the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import pytest

from gateway.conductor.client import ConductorClient
from gateway.devserver.brokers import free_port
from gateway.devserver.server import DevServer
from tests.daemon.conftest import committed_and_end, create_topic, producer, unique
from tests.daemon.process import GatewayProcess, write_config
from tests.messaging import queue_depth
from tests.proxy import TcpProxy

pytestmark = [pytest.mark.brokers, pytest.mark.slow]

EVENTS = int(os.environ.get("GATEWAY_REPLICAS_EVENTS", "3000"))
PARTITIONS = 8
REPLICAS = 3
KILL_EVERY = 3.0  # seconds between kill -9s
CUT_AT, CUT_FOR = 4.0, 10.0  # PostgreSQL unreachable from 4 s to 14 s after the produce
DEADLINE = float(os.environ.get("GATEWAY_REPLICAS_DEADLINE", "240"))  # seconds to settle
COMPLETED = "io.conductor.workflow.completed"


@dataclass
class Scenario:
    tmp: Path
    bootstrap: str
    idempotence: bool
    amqp_url: str
    dsn: str  # the proxy's, as the replicas see it
    topic: str = field(default_factory=lambda: unique("orders"))
    done_topic: str = field(default_factory=lambda: unique("done"))
    queue: str = field(default_factory=lambda: unique("orders-q"))
    workflow: str = field(default_factory=lambda: unique("order").replace("-", "_"))
    group: str = field(default_factory=lambda: unique("gw"))

    def rules(self) -> str:
        start = f"""
    idempotency_key: "${{body.key}}"
    retry: {{initial_backoff: 0.2, max_backoff: 2.0, max_attempts: 1000, max_age_seconds: 600}}
    start_workflow:
      name: {self.workflow}
      correlation_id: "${{body.key}}"
      input: {{key: "${{body.key}}", event: "${{body.event}}"}}
    completion: {{destination: "kafka:{self.done_topic}"}}"""
        return f"""
version: 1
rules:
  - name: from-kafka
    source: {{topic: {self.topic}}}{start}
  - name: from-amqp
    source: {{queue: {self.queue}}}{start}
"""

    def config(self, replica: str, conductor_url: str) -> dict[str, Any]:
        return {
            "replica_id": replica,
            "kafka": {
                "bootstrap_servers": self.bootstrap,
                "enable_idempotence": self.idempotence,
                "group_id": self.group,
                "session_timeout_ms": 6000,
                "revoke_drain_seconds": 2.0,
            },
            "amqp": {"url": self.amqp_url},
            "conductor": {"url": conductor_url, "flavor": "oss", "request_timeout": 5.0},
            "store": {"postgres_dsn": self.dsn, "claim_seconds": 5.0},
            "tracker": {"min_interval": 0.2, "max_interval": 2.0},
            "shutdown_grace_seconds": 10.0,
        }


@dataclass
class Replica:
    name: str
    config: Path
    log: Path
    admin_port: int
    process: asyncio.subprocess.Process | None = None
    kills: int = 0

    async def start(self) -> None:
        with self.log.open("ab") as stderr:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway", "run", "--config", str(self.config), stderr=stderr
            )

    async def wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        view = GatewayProcess(self.process, self.log, self.admin_port, time.monotonic())
        await view.wait_ready(timeout)

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()
            self.kills += 1

    async def stop(self) -> int | None:
        if self.process is None or self.process.returncode is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), 40)
        except TimeoutError:
            await self.kill()
            return None


@contextlib.asynccontextmanager
async def replicas(scenario: Scenario, conductor_url: str) -> AsyncIterator[list[Replica]]:
    started: list[Replica] = []
    try:
        for index in range(REPLICAS):
            name = f"replica-{index + 1}"
            config = scenario.config(name, conductor_url)
            config["admin"] = {"port": free_port()}
            path = write_config(scenario.tmp, scenario.rules(), config, name)
            replica = Replica(name, path, scenario.tmp / f"{name}.log", config["admin"]["port"])
            await replica.start()
            started.append(replica)
        yield started
    finally:
        for replica in started:
            await replica.kill()


def events(count: int, seed: int) -> list[tuple[str, str, int | None]]:
    """(event id, key, Kafka partition or None for the queue): two thirds alone on their key,
    one third in threes sharing a key across two partitions and the queue."""
    rng = random.Random(seed)
    shared_keys = count // 9
    made: list[tuple[str, str, int | None]] = []
    for k in range(shared_keys):
        first, second = rng.sample(range(PARTITIONS), 2)
        for partition in (first, second, None):
            made.append((f"e{len(made)}", f"shared-{k}", partition))
    while len(made) < count:
        partition = None if rng.random() < 0.2 else rng.randrange(PARTITIONS)
        made.append((f"e{len(made)}", f"single-{len(made)}", partition))
    rng.shuffle(made)
    return made


async def produce(scenario: Scenario, made: list[tuple[str, str, int | None]]) -> None:
    connection = await aio_pika.connect(scenario.amqp_url)
    async with (
        connection,
        producer(scenario.bootstrap, idempotence=scenario.idempotence) as kafka,
    ):
        channel = await connection.channel(publisher_confirms=True)
        for event_id, key, partition in made:
            body = json.dumps({"event": event_id, "key": key}).encode()
            if partition is None:
                message = aio_pika.Message(body, message_id=event_id, delivery_mode=2)
                await channel.default_exchange.publish(message, routing_key=scenario.queue)
            else:
                await kafka.send(scenario.topic, body, partition=partition)
        await kafka.flush()


async def chaos(running: list[Replica], stop: asyncio.Event) -> None:
    """Kill -9 one replica every KILL_EVERY seconds and start it again, in turn."""
    turn = 0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), KILL_EVERY)
        if stop.is_set():
            return
        victim = running[turn % len(running)]
        turn += 1
        await victim.kill()
        await victim.start()


async def cut_postgres(
    proxy: TcpProxy, running: list[Replica], record: dict[str, float]
) -> set[str]:
    """Cut PostgreSQL off for CUT_FOR seconds; return the /readyz reasons seen meanwhile."""
    began = time.monotonic()
    await asyncio.sleep(CUT_AT)
    await proxy.cut()
    record["cut_at"] = time.monotonic() - began
    seen: set[str] = set()
    try:
        while time.monotonic() - began < CUT_AT + CUT_FOR:
            for replica in running:
                if replica.process is not None and replica.process.returncode is None:
                    view = GatewayProcess(replica.process, replica.log, replica.admin_port, 0)
                    seen.update(await view.reasons() or [])
            await asyncio.sleep(0.5)
    finally:
        await proxy.restore()
    return seen


async def settled(scenario: Scenario, pg: asyncpg.Connection, keys: set[str]) -> dict[str, str]:
    """Wait until every key is recorded, every source drained and the outbox empty; return
    the recorded key -> workflow id."""
    deadline = time.monotonic() + DEADLINE
    recorded: dict[str, str] = {}
    while True:
        rows = await pg.fetch("SELECT key, workflow_id FROM gateway_starts")
        recorded = {r["key"]: r["workflow_id"] for r in rows}
        outbox = await pg.fetchval("SELECT count(*) FROM gateway_outbox")
        if os.environ.get("GATEWAY_REPLICAS_PROGRESS"):
            print(f"{time.strftime('%H:%M:%S')} recorded {len(recorded)} outbox {outbox}")
        if set(recorded) >= keys and outbox == 0:
            committed, end = await committed_and_end(
                scenario.bootstrap, scenario.group, scenario.topic, PARTITIONS
            )
            depth = await queue_depth(scenario.amqp_url, scenario.queue)
            if committed == end and depth == 0:
                return recorded
        assert time.monotonic() < deadline, (
            f"not settled in {DEADLINE}s: {len(set(recorded) & keys)}/{len(keys)} keys "
            f"recorded, {outbox} outbox rows"
        )
        await asyncio.sleep(2.0)


async def completions(
    bootstrap: str, topic: str, wanted: set[str]
) -> dict[str, set[tuple[str, str]]]:
    """workflow id -> the (CloudEvent id, type) published for it, read until every wanted one
    came (or a minute passed)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    seen: dict[str, set[tuple[str, str]]] = defaultdict(set)
    try:
        async with asyncio.timeout(60):
            while not wanted <= set(seen):
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        event = json.loads(record.value)
                        seen[event["data"]["workflowId"]].add((event["id"], event["type"]))
    except TimeoutError:
        pass
    finally:
        await consumer.stop()
    return seen


async def workflows_by_key(
    client: ConductorClient, name: str, keys: list[str]
) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        found.update(await client.get_by_correlation_ids(name, chunk, include_closed=True))
    return found


async def run_scenario(
    tmp: Path, bootstrap: str, idempotence: bool, amqp_url: str, postgres_dsn: str, seed: int
) -> dict[str, Any]:
    host, port = postgres_dsn.split("@", 1)[1].split("/", 1)[0].split(":")
    async with TcpProxy(host, int(port)) as proxy, DevServer(port=0) as server:
        dsn = postgres_dsn.replace(f":{port}/", f":{proxy.port}/")
        scenario = Scenario(tmp, bootstrap, idempotence, amqp_url, dsn)
        async with ConductorClient(server.url, flavor="oss", transport="httpx") as client:
            await client.register_workflow_def(
                {
                    "name": scenario.workflow,
                    "version": 1,
                    "tasks": [
                        {
                            "name": "note",
                            "taskReferenceName": "note",
                            "type": "SET_VARIABLE",
                            "inputParameters": {"key": "${workflow.input.key}"},
                        }
                    ],
                }
            )
            await create_topic(bootstrap, scenario.topic, PARTITIONS)
            await create_topic(bootstrap, scenario.done_topic, 1)
            made = events(EVENTS, seed)
            keys = {key for _, key, _ in made}
            record: dict[str, float] = {}
            pg = await asyncpg.connect(postgres_dsn)  # the test's own view, not through the cut
            try:
                opened = time.monotonic()
                async with replicas(scenario, server.url) as running:
                    await asyncio.gather(*(r.wait_ready(90) for r in running))
                    record["ready"] = time.monotonic() - opened
                    began = time.monotonic()
                    stop = asyncio.Event()
                    chaos_task = asyncio.create_task(chaos(running, stop))
                    cut_task = asyncio.create_task(cut_postgres(proxy, running, record))
                    await produce(scenario, made)
                    record["produced"] = time.monotonic() - began
                    try:
                        recorded = await settled(scenario, pg, keys)
                    finally:
                        stop.set()
                        await chaos_task
                        reasons = await cut_task
                    record["settled"] = time.monotonic() - began
                    codes = list(await asyncio.gather(*(r.stop() for r in running)))
                    record["stopped"] = time.monotonic() - began
                    kills = sum(r.kills for r in running)
                    logs = "".join(r.log.read_text(errors="replace") for r in running)
            finally:
                await pg.close()
            by_key = await workflows_by_key(client, scenario.workflow, sorted(keys))
            published = await completions(bootstrap, scenario.done_topic, set(recorded.values()))
            undone, problems = await check_workflows(client, keys, by_key, recorded)
    assert any(r.startswith("store: PostgreSQL unreachable") for r in reasons), reasons
    assert not problems, "\n".join(problems[:20])
    # Claims make the undo a last resort: in this run every key got exactly one workflow.
    assert undone == 0, f"{undone} duplicates were started (and undone)"
    ended = {wf: {kind for _, kind in got} for wf, got in published.items()}
    unfinished = {wf: kinds for wf, kinds in ended.items() if kinds != {COMPLETED}}
    assert not unfinished, (
        f"recorded workflows that did not complete: {list(unfinished.items())[:5]}"
    )
    missing = set(recorded.values()) - set(published)
    assert not missing, f"{len(missing)} recorded workflows never published their completion"
    several = {wf: ids for wf, ids in published.items() if len({i for i, _ in ids}) > 1}
    assert not several, f"completion events with more than one id: {list(several.items())[:5]}"
    strays = set(published) - set(recorded.values())
    assert not strays, f"completions of workflows the store did not record: {sorted(strays)[:5]}"
    return {
        "events": len(made),
        "keys": len(keys),
        "workflows": sum(len(ids) for ids in by_key.values()),
        "undone": undone,
        "completions": sum(len(ids) for ids in published.values()),
        "kills": kills,
        "exit codes": codes,
        "undone in logs": logs.count("terminating duplicate"),
        **{k: round(v, 1) for k, v in record.items()},
    }


async def check_workflows(
    client: ConductorClient,
    keys: set[str],
    by_key: dict[str, list[str]],
    recorded: dict[str, str],
) -> tuple[int, list[str]]:
    """(how many duplicates were undone, what is wrong): per key, the server holds the
    recorded workflow, and every other one was terminated by the gateway, naming it."""
    problems: list[str] = []
    undone = 0
    for key in sorted(keys):
        ids = by_key.get(key, [])
        kept = recorded.get(key)
        if kept not in ids:
            problems.append(f"{key}: recorded {kept}, on the server {ids}")
            continue
        for other in ids:
            if other == kept:
                continue
            workflow = await client.get_workflow(other, include_tasks=False)
            reason = str(workflow.reason_for_incompletion or "")
            if workflow.status != "TERMINATED" or kept not in reason:
                problems.append(f"{key}: a second workflow {other} ({workflow.status}, {reason})")
            undone += 1
    return undone, problems


@pytest.mark.parametrize("run", [1, 2, 3])
async def test_three_replicas_killed_and_cut_off_start_one_workflow_per_key_on_tansu(
    kafka_bootstrap: str, amqp_url: str, postgres_dsn: str, tmp_path: Path, run: int
) -> None:
    counts = await run_scenario(tmp_path, kafka_bootstrap, False, amqp_url, postgres_dsn, run)
    print(f"\nreplicas scenario on Tansu, run {run}: {counts}")


async def test_three_replicas_killed_and_cut_off_start_one_workflow_per_key_on_apache_kafka(
    apache_kafka_bootstrap: str, amqp_url: str, postgres_dsn: str, tmp_path: Path
) -> None:
    counts = await run_scenario(tmp_path, apache_kafka_bootstrap, True, amqp_url, postgres_dsn, 4)
    print(f"\nreplicas scenario on Apache Kafka: {counts}")

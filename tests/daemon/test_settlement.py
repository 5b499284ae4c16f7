"""Settlement under concurrency, shutdown and refusals: the real router, executor, store and
ConductorClient against the real dev server, fed by the in-memory source (gateway/sources/
memory.py), so no broker is needed: the pipeline cannot tell it from Kafka or RabbitMQ.

Faults (a 503, a 401, a 403) are injected by an httpx.MockTransport that forwards every other
request to the dev server, so what the tests count (workflows) is the server's own answer.
That the real sources settle as the pipeline says is proven on the brokers (test_kafka.py,
test_amqp.py, test_faults.py, test_source_faults.py, test_deadletters_large.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.conductor.client import ConductorClient
from gateway.deadletters import KeptBodies
from gateway.devserver.server import DevServer
from gateway.executor import Executor
from gateway.metrics import Metrics
from gateway.pipeline import Pipeline, Policy
from gateway.plan import Destination, RetryPolicy
from gateway.rules.loader import parse_rules
from gateway.rules.router import Router
from gateway.sources.memory import MemorySource
from gateway.store.sqlite import SqliteStore
from tests.daemon.conftest import wait_workflow
from tests.fakes import RecordingSink


class CountingEvent(asyncio.Event):
    """The pipeline's intake flag, counting how often it was closed and opened again."""

    def __init__(self) -> None:
        super().__init__()
        super().set()
        self.closed = self.opened = 0

    def clear(self) -> None:
        if self.is_set():
            self.closed += 1
        super().clear()

    def set(self) -> None:
        if not self.is_set():
            self.opened += 1
        super().set()


# -- a client whose transport injects faults and forwards the rest to the dev server ------

Fault = Callable[[httpx.Request], httpx.Response | None]


def is_start(request: httpx.Request) -> bool:
    return request.method == "POST" and request.url.path.rstrip("/").endswith("/api/workflow")


def first_starts(count: int, status: int, body: dict[str, Any]) -> Fault:
    """Answer the first `count` start requests with `status`; None: forward the request."""
    left = [count]

    def fault(request: httpx.Request) -> httpx.Response | None:
        if is_start(request) and left[0] > 0:
            left[0] -= 1
            return httpx.Response(status, json=body)
        return None

    return fault


class Forwarder:
    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.http = httpx.AsyncClient()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        answer = self.fault(request)
        if answer is not None:
            return answer
        await request.aread()
        forwarded = httpx.Request(
            request.method, request.url, headers=request.headers, content=request.content
        )
        response = await self.http.send(forwarded)
        await response.aread()
        return httpx.Response(
            response.status_code, headers=response.headers, content=response.content
        )


@pytest.fixture
async def server() -> AsyncIterator[DevServer]:
    async with DevServer(port=0) as dev:
        async with ConductorClient(dev.url, flavor="oss", transport="httpx") as admin:
            await admin.register_workflow_def(wait_workflow("flow"))
        yield dev


@contextlib.asynccontextmanager
async def client_with(server: DevServer, fault: Fault) -> AsyncIterator[ConductorClient]:
    forwarder = Forwarder(fault)
    try:
        async with ConductorClient(
            server.url, flavor="oss", max_retries=0, transport=httpx.MockTransport(forwarder)
        ) as client:
            await client.wait_ready()
            yield client
    finally:
        await forwarder.http.aclose()


def never(request: httpx.Request) -> httpx.Response | None:
    return None


async def count_flows(server: DevServer) -> int:
    async with ConductorClient(server.url, flavor="oss", transport="httpx") as client:
        result = await client.search(query="workflowType = flow", size=1000)
        return len(result.results)


def make_pipeline(
    rules: str, client: Any, store: SqliteStore, sink: Any, **policy: Any
) -> Pipeline:
    ruleset = parse_rules(rules)
    return Pipeline(
        router=Router(ruleset),
        executor=Executor(client, store),
        publisher=sink,
        conductor=client,
        metrics=Metrics(),
        policy=Policy(dead_letter=ruleset.default_dead_letter, **policy),
    )


START_RULES = """
version: 1
defaults: {dead_letter: "kafka:dead", retry: {max_attempts: 3, initial_backoff: 0.01}}
rules:
  - name: start
    source: {topic: orders}
    start_workflow: {name: flow, input: {id: "${body.id}"}}
  - name: start-amqp
    source: {queue: orders}
    start_workflow: {name: flow, input: {id: "${body.id}"}}
"""
DEAD_LETTER_ONLY = 'version: 1\ndefaults: {dead_letter: "kafka:dead"}\nrules: []\n'
NOT_UTF8 = b"\xff"  # a message the sources cannot use at all: dead-lettered as it is


# -- 1. one start per dedupe key, however many deliveries race for it ----------------------


async def test_two_concurrent_deliveries_of_one_amqp_message_start_one_workflow(
    server: DevServer, tmp_path: Path
) -> None:
    async with client_with(server, never) as client, SqliteStore(tmp_path / "s.db") as store:
        pipeline = make_pipeline(START_RULES, client, store, RecordingSink())
        async with MemorySource(pipeline, queue="orders") as source:
            # A producer published the same message twice (same message id); both copies
            # are taken at once (no key: nothing orders them).
            first = source.put({"id": "o-1"}, message_id="m-1")
            second = source.put({"id": "o-1"}, message_id="m-1")
            await asyncio.wait_for(source.idle(), 20)
    assert (first.settlements, second.settlements) == (["ack"], ["ack"])
    assert await count_flows(server) == 1


# -- 2. dead letters ---------------------------------------------------------------------


async def test_an_oversized_event_is_dead_lettered_with_its_body_and_the_reason(
    tmp_path: Path,
) -> None:
    # Whether a broker takes the 1.2 MB dead letter (Tansu does; Apache Kafka's 1 MiB topic
    # refuses it, and the body is kept beside the store) is test_deadletters_large.py's.
    sink = RecordingSink()
    big = b'{"blob": "' + b"x" * (1_200_000) + b'"}'  # over limits.max_message_bytes
    async with SqliteStore(tmp_path / "s.db") as store:
        pipeline = make_pipeline(
            DEAD_LETTER_ONLY, None, store, sink, kept_bodies=KeptBodies(tmp_path / "kept")
        )
        async with MemorySource(pipeline, topic="orders") as source:
            message = source.put(big, key="k")
            await asyncio.wait_for(source.idle(), 20)
    assert message.settlements == ["ack"]
    [(destination, body, headers)] = sink.published
    assert destination == Destination("kafka", "dead")
    assert body == big  # the sink took it: the body stays in the dead letter
    reason = f"message is {len(big)} bytes, over the limit of 1048576 bytes"
    assert headers["x-gateway-error-reason"] == reason
    assert headers["x-gateway-error-offset"] == "0"
    assert "x-gateway-error-body-ref" not in headers


async def test_a_dead_letter_that_keeps_failing_is_reported_blocked_until_stop(
    tmp_path: Path,
) -> None:
    sink = RecordingSink(failing=True)
    async with SqliteStore(tmp_path / "s.db") as store:
        pipeline = make_pipeline(
            DEAD_LETTER_ONLY,
            None,
            store,
            sink,
            dead_letter_retry=RetryPolicy(initial_backoff=0.001, max_backoff=0.005),
        )
        async with MemorySource(pipeline, topic="orders") as source:
            message = source.put(NOT_UTF8, key="k")
            for _ in range(500):
                if "gateway_dead_letter_blocked 1" in pipeline._metrics.render():
                    break
                await asyncio.sleep(0.01)
            assert "gateway_dead_letter_blocked 1" in pipeline._metrics.render()
            assert sink.attempts >= 10 and message.settlements == []  # still trying
            source.stop_intake()
            pipeline.stopping.set()
            assert await source.drain(5) == 0
    assert message.settlements == []  # left for the broker to redeliver
    assert "gateway_dead_letter_blocked 0" in pipeline._metrics.render()


# -- 3. shutdown: nothing after an abandoned delivery of its key is settled ----------------


async def test_stop_abandons_a_backing_off_delivery_and_its_successor(
    server: DevServer, tmp_path: Path
) -> None:
    rules = START_RULES.replace("initial_backoff: 0.01", "initial_backoff: 30")
    overloaded = {"status": 500, "message": "overloaded", "retryable": True}
    async with (
        client_with(server, first_starts(1, 500, overloaded)) as client,
        SqliteStore(tmp_path / "s.db") as store,
    ):
        pipeline = make_pipeline(rules, client, store, RecordingSink())
        async with MemorySource(pipeline, topic="orders") as source:
            a = source.put({"id": "a"}, key="k")
            b = source.put({"id": "b"}, key="k")
            async with asyncio.timeout(10):
                while not pipeline._metrics.total("gateway_retries_total"):
                    await asyncio.sleep(0.01)  # A failed once and is backing off (up to 30 s)
            pipeline.stopping.set()
            late = source.put({"id": "late"}, key="other")  # arrives as intake stops
            source.stop_intake()
            assert await source.drain(10) == 0
    assert (a.settlements, b.settlements) == ([], [])  # unsettled: the broker redelivers
    assert late.settlements == ["release"]  # given back at once, not as an attempt
    assert await count_flows(server) == 0  # B and the late one were not executed either


# -- 4. refusals: 401 holds the gateway once, 403 is one rule's problem ---------------------


async def test_a_403_is_retried_then_dead_lettered_without_pausing_intake(
    server: DevServer, tmp_path: Path
) -> None:
    forbidden = {"status": 403, "message": "no permission to start flow"}
    sink = RecordingSink()
    async with (
        client_with(server, first_starts(100, 403, forbidden)) as client,
        SqliteStore(tmp_path / "s.db") as store,
    ):
        pipeline = make_pipeline(START_RULES, client, store, sink)
        pipeline.intake = CountingEvent()
        async with MemorySource(pipeline, topic="orders") as source:
            message = source.put({"id": "f"}, key="k")
            await asyncio.wait_for(source.idle(), 20)
    assert message.settlements == ["ack"]
    [(destination, _body, headers)] = sink.published
    assert destination == Destination("kafka", "dead")
    assert headers["x-gateway-error-conductor-status"] == "403"
    assert headers["x-gateway-error-attempts"] == "3"
    assert pipeline.intake.closed == 0  # type: ignore[attr-defined]


async def test_many_calls_refused_with_401_hold_intake_once(
    server: DevServer, tmp_path: Path
) -> None:
    expired = {"status": 401, "message": "token expired", "error": "EXPIRED_TOKEN"}
    async with (
        client_with(server, first_starts(5, 401, expired)) as client,
        SqliteStore(tmp_path / "s.db") as store,
    ):
        pipeline = make_pipeline(START_RULES, client, store, RecordingSink())
        pipeline.intake = CountingEvent()
        source = MemorySource(pipeline, topic="orders")
        messages = [source.put({"id": n}) for n in range(5)]  # no key: all run at once
        async with source:
            await asyncio.wait_for(source.idle(), 20)
    assert [m.settlements for m in messages] == [["ack"]] * 5
    assert (pipeline.intake.closed, pipeline.intake.opened) == (1, 1)  # type: ignore[attr-defined]
    assert await count_flows(server) == 5


async def test_start_key_locks_are_forgotten_when_the_last_holder_leaves() -> None:
    from gateway.keylocks import KeyLocks

    locks = KeyLocks()
    order: list[str] = []

    async def hold(name: str) -> None:
        async with locks.hold("k"):
            order.append(f"{name}+")
            await asyncio.sleep(0.01)
            order.append(f"{name}-")

    await asyncio.gather(hold("a"), hold("b"), hold("c"))
    assert order == ["a+", "a-", "b+", "b-", "c+", "c-"]  # one at a time
    assert len(locks) == 0  # no entry left behind per key


# -- logging.log_payloads ------------------------------------------------------------------


@pytest.mark.parametrize("log_payloads", [False, True])
async def test_dead_letter_bodies_are_logged_only_when_asked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, log_payloads: bool
) -> None:
    caplog.set_level("INFO", logger="gateway.pipeline")
    async with SqliteStore(tmp_path / "s.db") as store:
        pipeline = make_pipeline(
            DEAD_LETTER_ONLY, None, store, RecordingSink(), log_payloads=log_payloads
        )
        async with MemorySource(pipeline, topic="orders") as source:
            message = source.put(b'{"card": "4111-secret"}' + NOT_UTF8, key="k")
            await asyncio.wait_for(source.idle(), 10)
    assert message.settlements == ["ack"]
    assert "dead-lettered kafka:orders:0:0" in caplog.text  # the event is logged either way
    assert ("4111-secret" in caplog.text) is log_payloads

"""The in-memory source as a user's test would use it: rules, the real pipeline, the dev server,
no broker; and the AMQP way of retrying (delayed copies carrying the attempt count)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.conductor.client import ConductorClient
from gateway.devserver.server import DevServer
from gateway.executor import Executor
from gateway.metrics import Metrics
from gateway.pipeline import Pipeline, Policy
from gateway.plan import Destination
from gateway.rules.loader import parse_rules
from gateway.rules.router import Router
from gateway.sources.memory import MemorySource
from gateway.store.sqlite import SqliteStore
from tests.daemon.conftest import wait_workflow
from tests.fakes import RecordingSink

RULES = """
version: 1
defaults: {retry: {max_attempts: 3, initial_backoff: 0.01}}
rules:
  - name: start-order
    source: {queue: orders}
    start_workflow: {name: order_flow, correlation_id: "${body.id}", input: {id: "${body.id}"}}
"""


def pipeline_of(
    client: ConductorClient, store: SqliteStore, sink: RecordingSink, conductor: Any = None
) -> Pipeline:
    ruleset = parse_rules(RULES)
    return Pipeline(
        router=Router(ruleset),
        executor=Executor(client, store),
        publisher=sink,
        conductor=conductor or client,
        metrics=Metrics(),
        policy=Policy(dead_letter=ruleset.default_dead_letter),
    )


async def test_events_put_into_a_queue_start_their_workflows(tmp_path: Path) -> None:
    async with (
        DevServer(port=0) as server,
        ConductorClient(server.url, flavor="oss", transport="httpx") as client,
        SqliteStore(tmp_path / "s.db") as store,
    ):
        await client.register_workflow_def(wait_workflow("order_flow"))
        async with MemorySource(pipeline_of(client, store, RecordingSink()), queue="orders") as q:
            messages = [q.put({"id": f"o-{n}"}) for n in range(3)]
            await asyncio.wait_for(q.idle(), 20)
        found = [await client.get_by_correlation_id("order_flow", f"o-{n}") for n in range(3)]
    assert [m.settlements for m in messages] == [["ack"]] * 3
    assert [len(workflows) for workflows in found] == [1, 1, 1]


async def test_a_queue_retries_through_delayed_copies_then_dead_letters_beside_it(
    tmp_path: Path,
) -> None:
    sink = RecordingSink()
    async with always_503() as client, SqliteStore(tmp_path / "s.db") as store:
        # A 503 from a server that answers is not an outage: the message's attempts run out.
        pipeline = pipeline_of(client, store, sink, conductor=_AlwaysReady())
        async with MemorySource(pipeline, queue="orders") as source:
            message = source.put({"id": "o-9"}, message_id="m-9")
            await asyncio.wait_for(source.idle(), 20)
    # Two retry copies (the original acked each time, as the AMQP source does), then the
    # third attempt gives up: dead-lettered to `<queue>.dlq`, then acked.
    assert message.settlements == ["defer", "defer", "ack"]
    assert message.deliveries == 3
    [(destination, body, headers)] = sink.published
    assert destination == Destination("amqp", "", "orders.dlq")
    assert body == b'{"id": "o-9"}'
    assert headers["x-gateway-error-attempts"] == "3"
    assert "gave up after 3 attempts" in headers["x-gateway-error-reason"]


async def test_a_retry_copy_the_broker_refuses_puts_the_original_back(tmp_path: Path) -> None:
    sink = RecordingSink()
    async with always_503() as client, SqliteStore(tmp_path / "s.db") as store:
        pipeline = pipeline_of(client, store, sink, conductor=_AlwaysReady())
        async with MemorySource(pipeline, queue="orders", refuse_retry_copies=1) as source:
            message = source.put({"id": "o-7"}, message_id="m-7")
            await asyncio.wait_for(source.idle(), 20)
    # The first retry copy is refused: the original goes back (requeue, not an attempt of
    # its own), comes again, and the attempts run out through two confirmed copies.
    assert message.settlements == ["requeue", "defer", "defer", "ack"]
    assert message.deliveries == 4
    [(_destination, _body, headers)] = sink.published
    assert headers["x-gateway-error-attempts"] == "3"


def test_a_memory_source_is_a_topic_or_a_queue() -> None:
    pipeline = Pipeline.__new__(Pipeline)  # never used: the arguments are refused first
    with pytest.raises(ValueError, match="one of topic= or queue="):
        MemorySource(pipeline)
    with pytest.raises(ValueError, match="one of topic= or queue="):
        MemorySource(pipeline, topic="orders", queue="orders")


def always_503() -> ConductorClient:
    """A client whose every call is answered 503 (retryable), without a server."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"message": "overloaded", "retryable": True})

    transport = httpx.MockTransport(answer)
    return ConductorClient(
        "http://conductor.invalid/api", flavor="oss", max_retries=0, transport=transport
    )


class _AlwaysReady:
    ready = True

    async def wait_ready(self) -> None:
        return None

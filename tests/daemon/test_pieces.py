"""The daemon's pieces without brokers: watermark, per-key order, retry tiers, settlement.

Settlement runs the real router, executor and store against the real dev server over HTTP,
fed by the in-memory source (it records how each message was settled) and a sink that records
what was published.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from aiokafka import TopicPartition

from gateway.conductor.client import ConductorClient
from gateway.devserver.server import DevServer
from gateway.executor import Executor
from gateway.metrics import Metrics
from gateway.pipeline import Pipeline, Policy
from gateway.plan import Destination
from gateway.rules.loader import parse_rules
from gateway.rules.router import Router
from gateway.sources.acks import Acks
from gateway.sources.amqp import retry_tier_ms
from gateway.sources.base import Ordered
from gateway.sources.memory import MemorySource
from gateway.sources.offsets import PartitionWindow
from gateway.store.sqlite import SqliteStore
from tests.daemon.conftest import wait_workflow
from tests.fakes import RecordingSink


def test_watermark_commits_only_contiguous_finished_offsets() -> None:
    window = PartitionWindow(TopicPartition("t", 0))
    for offset in range(10, 15):
        window.add(offset)
    window.finish(12)
    window.finish(11)
    assert window.to_commit() == 10  # 10 is unfinished: nothing past it may be committed
    window.finish(10)
    assert window.to_commit() == 13
    window.committed = 13
    assert window.to_commit() is None
    window.finish(14)
    window.finish(13)
    assert window.to_commit() == 15 and not window.pending


async def test_ordered_runs_one_key_in_order_and_keys_concurrently() -> None:
    ordered = Ordered()
    log: list[str] = []

    def work(name: str, delay: float):  # type: ignore[no-untyped-def]
        async def run() -> None:
            await asyncio.sleep(delay)
            log.append(name)

        return run

    ordered.spawn("a", work("a1", 0.05))
    ordered.spawn("a", work("a2", 0.0))
    ordered.spawn("b", work("b1", 0.0))
    ordered.spawn(None, work("n1", 0.01))
    assert await ordered.drain(5) == 0
    assert log.index("a1") < log.index("a2")
    assert log[0] == "b1"  # b did not wait for a


def test_retry_tiers_round_up_to_powers_of_two() -> None:
    assert retry_tier_ms(0) == 250
    assert retry_tier_ms(0.3) == 500
    assert retry_tier_ms(1.0) == 1000
    assert retry_tier_ms(1.01) == 2000
    assert retry_tier_ms(60) == 64000


async def test_settlement_retries_then_dead_letters_with_attempts_and_acks_once(
    tmp_path: Path,
) -> None:
    rules = """
version: 1
defaults: {dead_letter: "kafka:dead", retry: {max_attempts: 3, initial_backoff: 0.01}}
rules:
  - name: start
    source: {topic: orders}
    start_workflow: {name: flow, correlation_id: "${body.id}"}
"""
    sink = RecordingSink(failures=1)  # the first dead-letter publish is not confirmed

    def always_503(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"message": "overloaded", "retryable": True})

    client = ConductorClient(
        "http://conductor.invalid/api",
        flavor="oss",
        max_retries=0,
        transport=httpx.MockTransport(always_503),
    )
    async with client, SqliteStore(tmp_path / "s.db") as store:
        pipeline = Pipeline(
            router=Router(parse_rules(rules)),
            executor=Executor(client, store),
            publisher=sink,
            conductor=_AlwaysReady(),
            metrics=Metrics(),
            policy=Policy(),
        )
        async with MemorySource(pipeline, topic="orders") as source:
            message = source.put(b'{"id": "e1"}', key="k")
            await asyncio.wait_for(source.idle(), 20)
    assert message.settlements == ["ack"] and message.deliveries == 1  # retried in place
    [(destination, body, headers)] = sink.published
    assert destination == Destination("kafka", "dead") and body == b'{"id": "e1"}'
    assert headers["x-gateway-error-attempts"] == "3"
    assert headers["x-gateway-error-class"]  # the client's transient error class
    assert headers["x-gateway-error-conductor-status"] == "503"
    assert headers["x-gateway-error-offset"] == "0"
    assert "gave up after 3 attempts" in headers["x-gateway-error-reason"]


class _AlwaysReady:
    ready = True

    async def wait_ready(self) -> None:
        return None


async def test_a_redelivered_start_reuses_the_recorded_workflow(tmp_path: Path) -> None:
    rules = """
version: 1
rules:
  - name: start
    source: {topic: orders}
    start_workflow: {name: flow, correlation_id: "${body.id}"}
"""
    async with (
        DevServer(port=0) as server,
        ConductorClient(server.url, flavor="oss", transport="httpx") as client,
        SqliteStore(tmp_path / "s.db") as store,
    ):
        await client.register_workflow_def(wait_workflow("flow"))
        pipeline = Pipeline(
            router=Router(parse_rules(rules)),
            executor=Executor(client, store),
            publisher=RecordingSink(),
            conductor=client,
            metrics=Metrics(),
            policy=Policy(),
        )
        async with MemorySource(pipeline, topic="orders") as source:
            message = source.put(b'{"id": "e1"}', key="k")
            await asyncio.wait_for(source.idle(), 20)
            for _ in range(2):  # the broker delivers the same record again, marked redelivered
                source.again(message)
                await asyncio.wait_for(source.idle(), 20)
        assert message.settlements == ["ack"] * 3
        found = await client.get_by_correlation_id("flow", "e1", include_closed=True)
    assert len(found) == 1


def test_kafka_security_options_verify_tls_and_pass_sasl_credentials() -> None:
    import ssl

    from gateway.settings import KafkaSettings
    from gateway.sources.kafka_config import security_options

    settings = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="gw",
        sasl_password="s3cret",
    )
    options = security_options(settings)
    context = options["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "gw"
    assert options["sasl_plain_password"] == "s3cret"
    assert security_options(KafkaSettings()) == {"security_protocol": "PLAINTEXT"}


def test_sources_needed_by_the_rules() -> None:
    import re

    ruleset = parse_rules("""
version: 1
defaults: {dead_letter: "amqp:parked"}
rules:
  - name: a
    source: {topic_pattern: "orders\\\\..*"}
    terminate: {workflow_id: "${body.id}"}
  - name: b
    source: {topic: refunds}
    terminate: {workflow_id: "${body.id}"}
  - name: c
    source: {queue: payments, exchange: pay, routing_key: "payment.*"}
    terminate: {workflow_id: "${body.id}"}
""")
    pattern = ruleset.kafka_pattern()
    assert pattern is not None
    assert re.match(pattern, "orders.eu") and re.match(pattern, "refunds")
    assert not re.match(pattern, "orders") and not re.match(pattern, "refunds.old")
    assert ruleset.amqp_queue_bindings() == {"payments": (("pay", "payment.*"),)}
    assert ruleset.amqp_declared_queues() == ["parked", "payments.dlq"]


async def test_unmatched_events_follow_the_rule_sets_policy(tmp_path: Path) -> None:
    template = """
version: 1
on_unmatched: {policy}
defaults: {{dead_letter: "kafka:parked"}}
rules:
  - name: only-orders
    source: {{topic: orders}}
    match: {{body: {{type: [OrderCreated]}}}}
    terminate: {{workflow_id: "${{body.id}}"}}
"""
    results = {}
    async with SqliteStore(tmp_path / "s.db") as store:
        for policy in ("ack", "dead_letter"):
            sink = RecordingSink()
            ruleset = parse_rules(template.format(policy=policy))
            pipeline = Pipeline(
                router=Router(ruleset),
                executor=Executor(None, store),
                publisher=sink,
                conductor=_AlwaysReady(),
                metrics=Metrics(),
                policy=Policy(dead_letter=ruleset.default_dead_letter),
            )
            async with MemorySource(pipeline, topic="orders") as source:
                message = source.put({"type": "Other", "id": "x"}, key="k")
                await asyncio.wait_for(source.idle(), 20)
            results[policy] = (message.acked, [str(d) for d, _b, _h in sink.published])
    assert results["ack"] == (1, [])
    assert results["dead_letter"] == (1, ["kafka:parked"])


async def test_amqp_acks_are_one_multiple_ack_only_when_nothing_before_them_is_unsettled() -> None:
    sent: list[tuple[int, bool]] = []

    async def send(tag: int, multiple: bool) -> None:
        sent.append((tag, multiple))

    acks = Acks(send, hold=2, interval=60, linger=60)  # the timers never fire: flushed by hand
    for tag in range(1, 10):
        acks.expect(tag)
    acks.ack(2)
    acks.ack(3)
    await acks.send(final=False)
    assert sent == []  # 1 is unsettled: a multiple ack of 2 or 3 would ack it too
    acks.ack(1)
    await acks.send(final=False)
    assert sent == [(3, True)]  # one frame for 1, 2 and 3
    acks.forget(4)  # rejected or nacked: the broker holds it no longer
    acks.ack(5)
    await acks.send(final=False)
    assert sent[-1] == (5, False)
    for tag in (7, 8):
        acks.ack(tag)
    await acks.send(final=False)
    assert sent[-1] == (5, False)  # 7 and 8 wait behind 6 (no more than `hold` of them)
    acks.ack(9)
    await acks.send(final=False)
    assert sent[-3:] == [(7, False), (8, False), (9, False)]  # over `hold`: each alone
    acks.ack(6)
    await acks.close()
    assert sent[-1] == (6, False) and len(sent) == 6  # 7, 8 and 9 are not acked twice


async def test_an_amqp_ack_behind_an_unsettled_delivery_goes_alone_after_lingering() -> None:
    sent: list[tuple[int, bool]] = []

    async def send(tag: int, multiple: bool) -> None:
        sent.append((tag, multiple))

    acks = Acks(send, hold=100, interval=0.001, linger=0.02)
    acks.expect(1)
    acks.expect(2)
    acks.ack(2)
    async with asyncio.timeout(5):
        while not sent:
            await asyncio.sleep(0.005)
    assert sent == [(2, False)]  # 1 may run long: 2 does not hold its prefetch slot forever
    acks.ack(1)
    await acks.close()
    assert sent == [(2, False), (1, False)]

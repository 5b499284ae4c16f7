"""The daemon against real RabbitMQ and the dev server: signals, delayed retries, dead letters;
the signal and request/reply (synchronous execution) also against the real Conductor OSS."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from gateway.conductor.client import ConductorClient
from gateway.devserver.brokers import RabbitMQ
from gateway.devserver.server import DevServer
from tests.daemon.conftest import (
    ConductorServer,
    eventually,
    make_settings,
    running,
    unique,
    wait_workflow,
    workflows_of,
)

pytestmark = pytest.mark.brokers


def signal_rules(queue: str, exchange: str, workflow: str, retry_for: float = 0) -> str:
    missing = f"on_missing: retry\n      retry_for_seconds: {retry_for}" if retry_for else ""
    return f"""
version: 1
rules:
  - name: payment-received
    source: {{queue: {queue}, exchange: {exchange}, routing_key: "payment.*"}}
    retry: {{initial_backoff: 0.2, max_backoff: 1.0, max_attempts: 50}}
    signal:
      workflow_name: {workflow}
      correlation_id: "${{body.order_id}}"
      status: COMPLETED
      output: {{paid: "${{body.amount}}"}}
      {missing}
"""


async def publish(
    url: str, exchange: str, routing_key: str, body: dict[str, object], message_id: str
) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        ex = await channel.get_exchange(exchange)
        message = aio_pika.Message(
            json.dumps(body).encode(), message_id=message_id, content_type="application/json"
        )
        await ex.publish(message, routing_key=routing_key, mandatory=True)


async def test_amqp_event_signals_the_waiting_workflow_found_by_correlation_id(
    amqp_url: str, oss_conductor: ConductorServer, tmp_path: Path
) -> None:
    conductor = oss_conductor.client
    queue, exchange, workflow = unique("payments"), unique("events"), unique("order_flow")
    await conductor.register_workflow_def(wait_workflow(workflow))
    workflow_id = await conductor.start_workflow(workflow, correlation_id="order-1")
    other_id = await conductor.start_workflow(workflow, correlation_id="order-2")
    settings = make_settings(tmp_path, conductor_url=oss_conductor.url, amqp_url=amqp_url)
    async with running(settings, signal_rules(queue, exchange, workflow)):
        body = {"order_id": "order-1", "amount": 42}
        await publish(amqp_url, exchange, "payment.card", body, "m-1")

        async def completed() -> bool:
            return (await conductor.get_workflow(workflow_id)).status == "COMPLETED"

        await eventually(completed, timeout=30)
    done = await conductor.get_workflow(workflow_id)
    assert done.tasks[0].output_data.get("paid") == 42
    assert (await conductor.get_workflow(other_id)).status == "RUNNING"


async def test_signal_ahead_of_its_workflow_is_retried_through_the_retry_queue(
    amqp_url: str, devserver: DevServer, conductor: ConductorClient, tmp_path: Path
) -> None:
    queue, exchange, workflow = unique("payments"), unique("events"), unique("order_flow")
    await conductor.register_workflow_def(wait_workflow(workflow))
    settings = make_settings(tmp_path, conductor_url=devserver.url, amqp_url=amqp_url)
    rules = signal_rules(queue, exchange, workflow, retry_for=60)
    async with running(settings, rules) as gateway:
        await publish(amqp_url, exchange, "payment.card", {"order_id": "late", "amount": 7}, "m-2")

        async def retried() -> bool:
            return gateway.metrics.total("gateway_retries_total") >= 2

        await eventually(retried, timeout=30)
        workflow_id = await conductor.start_workflow(workflow, correlation_id="late")

        async def completed() -> bool:
            return (await conductor.get_workflow(workflow_id)).status == "COMPLETED"

        await eventually(completed, timeout=30)
    done = await conductor.get_workflow(workflow_id)
    assert done.tasks[0].output_data.get("paid") == 7


async def test_poison_amqp_message_is_dead_lettered_with_headers_and_acked(
    amqp_url: str, devserver: DevServer, conductor: ConductorClient, tmp_path: Path
) -> None:
    queue, exchange, workflow = unique("payments"), unique("events"), unique("order_flow")
    settings = make_settings(tmp_path, conductor_url=devserver.url, amqp_url=amqp_url)
    dead: list[aio_pika.abc.AbstractIncomingMessage] = []
    async with running(settings, signal_rules(queue, exchange, workflow)):
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            ex = await channel.get_exchange(exchange)
            poison = aio_pika.Message(b"{oops", message_id="m-bad", headers={"trace": "t-9"})
            await ex.publish(poison, routing_key="payment.card", mandatory=True)
            dlq = await channel.declare_queue(f"{queue}.dlq", durable=True)

            async def dead_lettered() -> bool:
                if (message := await dlq.get(no_ack=True, fail=False)) is not None:
                    dead.append(message)
                return bool(dead)

            await eventually(dead_lettered, timeout=30)
    # The gateway has stopped, so its channel is closed and anything it had not acked is back
    # in the queue as ready: a zero count now means the poison message was acked.
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        source = await channel.declare_queue(queue, durable=True, passive=True)
        assert source.declaration_result.message_count == 0  # acked, not requeued
    headers = {
        k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in dead[0].headers.items()
    }
    assert dead[0].body == b"{oops"
    assert headers["trace"] == "t-9"
    assert headers["x-gateway-error-origin"] == f"amqp:{queue}"
    assert headers["x-gateway-error-queue"] == queue
    assert headers["x-gateway-error-exchange"] == exchange
    assert headers["x-gateway-error-routing-key"] == "payment.card"
    assert headers["x-gateway-error-message-id"] == "m-bad"
    assert "not JSON" in headers["x-gateway-error-reason"]


async def test_request_reply_answers_the_reply_to_queue_with_the_result(
    amqp_url: str, oss_conductor: ConductorServer, tmp_path: Path
) -> None:
    conductor = oss_conductor.client
    queue, workflow = unique("quotes"), unique("quote")
    await conductor.register_workflow_def(
        {
            "name": workflow,
            "version": 1,
            "tasks": [
                {
                    "name": "set",
                    "taskReferenceName": "set",
                    "type": "SET_VARIABLE",
                    "inputParameters": {"price": "${workflow.input.qty}"},
                }
            ],
            "outputParameters": {"price": "${workflow.variables.price}"},
        }
    )
    rules = f"""
version: 1
rules:
  - name: quote
    source: {{queue: {queue}}}
    execute_workflow: {{name: {workflow}, input: {{qty: "${{body.qty}}"}}}}
    reply: {{}}
"""
    settings = make_settings(tmp_path, conductor_url=oss_conductor.url, amqp_url=amqp_url)
    async with running(settings, rules):
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            replies = await channel.declare_queue(exclusive=True)
            request = aio_pika.Message(
                b'{"qty": 3}', message_id="q-1", correlation_id="req-1", reply_to=replies.name
            )
            await channel.default_exchange.publish(request, routing_key=queue)
            answers: list[aio_pika.abc.AbstractIncomingMessage] = []

            async def replied() -> bool:
                if (message := await replies.get(no_ack=True, fail=False)) is not None:
                    answers.append(message)
                return bool(answers)

            await eventually(replied, timeout=30)
    answer = answers[0]
    assert answer.correlation_id == "req-1"
    assert b"COMPLETED" in answer.body and b"price" in answer.body


async def test_consumers_come_back_after_a_rabbitmq_restart(
    devserver: DevServer, conductor: ConductorClient, tmp_path: Path
) -> None:
    # A broker of its own: restarting the shared one would disturb other tests.
    queue, exchange, workflow = unique("payments"), unique("events"), unique("order_flow")
    await conductor.register_workflow_def(wait_workflow(workflow))
    first = await conductor.start_workflow(workflow, correlation_id="before")
    second = await conductor.start_workflow(workflow, correlation_id="after")
    broker = RabbitMQ()
    await asyncio.to_thread(broker.start)
    try:
        settings = make_settings(
            tmp_path,
            conductor_url=devserver.url,
            amqp_url=broker.url,
            amqp={"reconnect_interval": 0.5},
        )
        async with running(settings, signal_rules(queue, exchange, workflow)) as gateway:
            await publish(broker.url, exchange, "payment.card", {"order_id": "before"}, "m-1")
            await eventually(lambda: _status_is(conductor, first, "COMPLETED"), timeout=30)
            await asyncio.to_thread(broker.stop)
            await asyncio.to_thread(broker.start)  # same port, empty broker
            await eventually(lambda: _connected(gateway), timeout=60)
            await eventually(lambda: _publish_ok(broker.url, exchange, "after"), timeout=60)
            await eventually(lambda: _status_is(conductor, second, "COMPLETED"), timeout=60)
    finally:
        await asyncio.to_thread(broker.stop)


async def _status_is(conductor: ConductorClient, workflow_id: str, status: str) -> bool:
    return (await conductor.get_workflow(workflow_id)).status == status


async def _connected(gateway: Any) -> bool:
    return bool(gateway.amqp is not None and gateway.amqp.connected)


async def _publish_ok(url: str, exchange: str, order_id: str) -> bool:
    """Publish once the restored exchange and queue exist (the gateway re-declares them)."""
    try:
        await publish(url, exchange, "payment.card", {"order_id": order_id}, f"m-{order_id}")
    except Exception:
        return False
    return True


async def test_admin_endpoint_reports_health_readiness_metrics_and_rules(
    amqp_url: str, devserver: DevServer, conductor: ConductorClient, tmp_path: Path
) -> None:
    import httpx

    from gateway.devserver.brokers import free_port

    queue, exchange, workflow = unique("payments"), unique("events"), unique("order_flow")
    await conductor.register_workflow_def(wait_workflow(workflow))
    await conductor.start_workflow(workflow, correlation_id="order-9")
    port = free_port()
    settings = make_settings(
        tmp_path, conductor_url=devserver.url, amqp_url=amqp_url, admin={"port": port}
    )
    async with running(settings, signal_rules(queue, exchange, workflow)) as gateway:
        await publish(amqp_url, exchange, "payment.card", {"order_id": "order-9"}, "m-9")

        async def settled() -> bool:
            return gateway.metrics.total("gateway_events_settled_total") >= 1

        await eventually(settled, timeout=30)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            health = await http.get("/healthz")
            ready = await http.get("/readyz")
            metrics = (await http.get("/metrics")).text
            rules = (await http.get("/rules")).json()
    assert health.status_code == 200
    assert ready.status_code == 200 and ready.json() == {"ready": True, "reasons": []}
    assert f'gateway_events_received_total{{source="amqp:{queue}"}} 1' in metrics
    assert 'gateway_events_settled_total{outcome="done"} 1' in metrics
    for tracker_counter in ("tracker_polls", "completions_expired", "completions_abandoned"):
        assert f"# TYPE gateway_{tracker_counter}_total counter" in metrics
        assert f"\ngateway_{tracker_counter}_total " in metrics
    assert [r["name"] for r in rules["rules"]] == ["payment-received"]


async def test_a_message_published_twice_with_one_message_id_starts_one_workflow(
    amqp_url: str, devserver: DevServer, conductor: ConductorClient, tmp_path: Path
) -> None:
    queue, exchange, workflow = unique("orders"), unique("events"), unique("order_flow")
    await conductor.register_workflow_def(wait_workflow(workflow))
    rules = f"""
version: 1
rules:
  - name: start
    source: {{queue: {queue}, exchange: {exchange}, routing_key: "order.*"}}
    start_workflow: {{name: {workflow}, correlation_id: "${{body.order_id}}"}}
"""
    settings = make_settings(tmp_path, conductor_url=devserver.url, amqp_url=amqp_url)
    async with running(settings, rules) as gateway:
        for _ in range(2):  # a producer retry: same message id
            await publish(amqp_url, exchange, "order.created", {"order_id": "o-7"}, "msg-7")
        await publish(amqp_url, exchange, "order.created", {"order_id": "o-8"}, "msg-8")

        async def settled() -> bool:
            return gateway.metrics.total("gateway_events_settled_total") >= 3

        await eventually(settled, timeout=30)
    found = sorted(w.correlation_id for w in await workflows_of(conductor, workflow))
    assert found == ["o-7", "o-8"]


async def test_dlq_replay_from_an_amqp_queue_puts_dead_letters_back(
    amqp_url: str, devserver: DevServer, conductor: ConductorClient, tmp_path: Path
) -> None:
    import sys

    queue, exchange, workflow = unique("orders"), unique("events"), unique("late_flow")
    rules = f"""
version: 1
rules:
  - name: start-late
    source: {{queue: {queue}, exchange: {exchange}, routing_key: "order.*"}}
    start_workflow: {{name: {workflow}, correlation_id: "${{body.order_id}}"}}
"""
    settings = make_settings(tmp_path, conductor_url=devserver.url, amqp_url=amqp_url)
    config = tmp_path / "replay.yaml"
    (tmp_path / "rules.yaml").write_text(rules)  # replay publishes only to rule sources
    config.write_text(
        json.dumps({"amqp": {"url": amqp_url}, "rules_file": str(tmp_path / "rules.yaml")})
    )
    async with running(settings, rules) as gateway:
        await publish(amqp_url, exchange, "order.created", {"order_id": "late-1"}, "msg-l1")

        async def dead() -> bool:
            return gateway.metrics.total("gateway_dead_letters_total") >= 1

        await eventually(dead, timeout=30)  # the workflow is not defined yet
        await conductor.register_workflow_def(wait_workflow(workflow))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "dlq",
            "replay",
            "--from",
            f"amqp:{queue}.dlq",
            "--config",
            str(config),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()[-2000:]
        assert "replayed 1" in out.decode()

        async def started() -> bool:
            return len(await workflows_of(conductor, workflow)) == 1

        await eventually(started, timeout=30)


async def test_existing_quorum_queue_and_direct_exchange_are_used_as_they_are(
    amqp_url: str, devserver: DevServer, conductor: ConductorClient, tmp_path: Path
) -> None:
    queue, exchange, workflow = unique("payments"), unique("direct"), unique("order_flow")
    await conductor.register_workflow_def(wait_workflow(workflow))
    workflow_id = await conductor.start_workflow(workflow, correlation_id="order-q")
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
        await channel.declare_exchange(exchange, aio_pika.ExchangeType.DIRECT, durable=True)
    rules = f"""
version: 1
rules:
  - name: paid
    source: {{queue: {queue}, exchange: {exchange}, routing_key: paid}}
    signal: {{workflow_name: {workflow}, correlation_id: "${{body.order_id}}"}}
"""
    settings = make_settings(tmp_path, conductor_url=devserver.url, amqp_url=amqp_url)
    async with running(settings, rules):
        await publish(amqp_url, exchange, "paid", {"order_id": "order-q"}, "m-q")

        async def completed() -> bool:
            return (await conductor.get_workflow(workflow_id)).status == "COMPLETED"

        await eventually(completed, timeout=30)


async def test_a_request_that_outlives_its_wait_is_answered_twice_running_then_done(
    amqp_url: str, oss_conductor: ConductorServer, tmp_path: Path
) -> None:
    conductor = oss_conductor.client
    queue, workflow = unique("requests"), unique("slow")
    await conductor.register_workflow_def(wait_workflow(workflow))
    rules = f"""
version: 1
rules:
  - name: slow
    source: {{queue: {queue}}}
    execute_workflow: {{name: {workflow}, correlation_id: "${{body.id}}", wait_for_seconds: 1}}
    reply: {{}}
"""
    settings = make_settings(tmp_path, conductor_url=oss_conductor.url, amqp_url=amqp_url)
    answers: list[aio_pika.abc.AbstractIncomingMessage] = []
    async with running(settings, rules):
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            replies = await channel.declare_queue(exclusive=True)
            request = aio_pika.Message(
                b'{"id": "r-1"}', message_id="r-1", correlation_id="req-2", reply_to=replies.name
            )
            await channel.default_exchange.publish(request, routing_key=queue)

            async def answered(count: int) -> bool:
                message = await replies.get(no_ack=True, fail=False)
                if message is not None:
                    answers.append(message)
                return len(answers) >= count

            await eventually(lambda: answered(1), timeout=30)
            [wf] = await conductor.get_by_correlation_id(workflow, "r-1")
            await conductor.signal(wf.workflow_id, "COMPLETED", {"done": True})
            await eventually(lambda: answered(2), timeout=30)
    assert [a.correlation_id for a in answers] == ["req-2", "req-2"]
    assert b"RUNNING" in answers[0].body and b"COMPLETED" in answers[1].body

"""Tracing: an event carrying a W3C `traceparent` gives one trace holding its delivery, the
Conductor call that started the workflow and the publish of the workflow's completion event
(RabbitMQ, the dev server, the SDK's in-memory exporter); and tracing stays off by default."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import aio_pika
import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.admin import OPENMETRICS
from gateway.conductor.client import ConductorClient
from gateway.devserver.brokers import free_port
from gateway.devserver.server import DevServer
from gateway.errors import ConfigError
from gateway.tracing import NO_TRACING, TRACE_KEY, OtelTracing, Tracing
from tests.daemon.conftest import eventually, make_settings, running, unique

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.mark.brokers
async def test_an_event_with_a_traceparent_gives_one_trace_to_its_completion(
    amqp_url: str, devserver: DevServer, conductor: ConductorClient, tmp_path: Path
) -> None:
    queue, status_queue, workflow = unique("orders"), unique("order-status"), unique("order")
    await conductor.register_workflow_def(set_variable_workflow(workflow))
    rules = f"""
version: 1
rules:
  - name: orders
    source: {{queue: {queue}}}
    start_workflow: {{name: {workflow}, input: {{qty: "${{body.qty}}"}}}}
    completion: {{destination: "amqp:{status_queue}"}}
"""
    port = free_port()
    settings = make_settings(
        tmp_path,
        conductor_url=devserver.url,
        amqp_url=amqp_url,
        tracker={"min_interval": 0.1},
        admin={"port": port},
    )
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        statuses = await channel.declare_queue(status_queue, durable=True)
        got: list[aio_pika.abc.AbstractIncomingMessage] = []

        async def completed() -> bool:
            if (message := await statuses.get(no_ack=True, fail=False)) is not None:
                got.append(message)
            return bool(got)

        async with running(settings, rules, OtelTracing(provider)) as gateway:
            headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
            message = aio_pika.Message(b'{"qty": 3}', message_id="o-1", headers=headers)
            await channel.default_exchange.publish(message, routing_key=queue)
            await eventually(completed, timeout=30)
            calls = {"operation": "start_workflow", "status_class": "2xx"}
            timed = gateway.metrics.value("gateway_conductor_request_seconds_count", **calls)
            delay = "gateway_completion_publish_delay_seconds_count"
            published = gateway.metrics.value(delay, rule="orders")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                openmetrics = await http.get("/metrics", headers={"Accept": OPENMETRICS})
    assert timed == 1  # traced and timed at once
    assert published == 1  # workflow end -> completion confirmed, observed once
    # Prometheus asks for OpenMetrics and gets the settle latency's exemplar: the trace id.
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    settled = [
        line
        for line in openmetrics.text.splitlines()
        if line.startswith("gateway_event_settle_seconds_bucket") and " # {" in line
    ]
    assert settled and all(f'trace_id="{TRACE_ID}"' in line for line in settled)

    spans = [s for s in exporter.get_finished_spans() if trace_id(s) == TRACE_ID]
    by_name = {s.name: s for s in spans}
    assert {"gateway.delivery", "gateway.route", "conductor start_workflow"} <= set(by_name)
    assert {"store record_start", "gateway.completion"} <= set(by_name)
    delivery, start = by_name["gateway.delivery"], by_name["conductor start_workflow"]
    assert delivery.parent is not None and f"{delivery.parent.span_id:016x}" == PARENT_ID
    assert start.parent is not None and start.parent.span_id == delivery.context.span_id
    workflow_id = start.attributes["conductor.workflow_id"] if start.attributes else None
    assert isinstance(workflow_id, str) and workflow_id
    completion_span = by_name["gateway.completion"]
    assert completion_span.attributes == {"conductor.workflow_id": workflow_id}
    # The workflow input carries the starting call's span; the completion event its own.
    run = await conductor.get_workflow(workflow_id, include_tasks=False)
    assert run.input[TRACE_KEY]["traceparent"].startswith(f"00-{TRACE_ID}-")
    assert run.input["qty"] == 3
    event = json.loads(got[0].body)
    assert event["data"]["workflowId"] == workflow_id
    assert event["traceparent"].startswith(f"00-{TRACE_ID}-")


def test_tracing_is_off_unless_an_exporter_is_named() -> None:
    assert Tracing.from_env({}) is NO_TRACING
    assert Tracing.from_env({"OTEL_TRACES_EXPORTER": "none"}) is NO_TRACING
    assert Tracing.from_env({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}) is (
        NO_TRACING
    )
    client = object()
    assert NO_TRACING.traced(client, "conductor") is client  # no wrapper, no cost per call
    assert NO_TRACING.headers() == {}


def test_an_exporter_named_without_the_otel_extra_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "gateway.otel", raising=False)
    with pytest.raises(ConfigError, match=r"conductor-event-gateway\[otel\]"):
        Tracing.from_env({"OTEL_TRACES_EXPORTER": "otlp"})


def set_variable_workflow(name: str) -> dict[str, object]:
    return {
        "name": name,
        "version": 1,
        "tasks": [
            {
                "name": "set",
                "taskReferenceName": "set",
                "type": "SET_VARIABLE",
                "inputParameters": {"qty": "${workflow.input.qty}"},
            }
        ],
    }


def trace_id(span: ReadableSpan) -> str:
    return f"{span.context.trace_id:032x}" if span.context else ""

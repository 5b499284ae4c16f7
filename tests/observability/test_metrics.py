"""/metrics and the logs after a known run on RabbitMQ and the dev server: the latency histograms
count each rule's events, their buckets are cumulative, the Conductor calls are timed by
operation; one DEBUG line per settled event and one WARNING per dead letter, without payloads."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from gateway.admin import read_admin
from gateway.conductor.client import ConductorClient
from gateway.devserver.brokers import free_port
from gateway.devserver.server import DevServer
from gateway.liveview import read_view, to_text
from tests.daemon.conftest import eventually, make_settings, running, unique, wait_workflow
from tests.daemon.test_amqp import publish

pytestmark = pytest.mark.brokers


def start_rules(queue: str, exchange: str, workflow: str) -> str:
    return f"""
version: 1
rules:
  - name: order-placed
    source: {{queue: {queue}-placed, exchange: {exchange}, routing_key: "order.placed"}}
    start_workflow: {{name: {workflow}, input: {{order: "${{body.n}}"}}}}
  - name: order-cancelled
    source: {{queue: {queue}-cancelled, exchange: {exchange}, routing_key: "order.cancelled"}}
    start_workflow: {{name: {workflow}, input: {{order: "${{body.n}}"}}}}
  - name: order-shipped
    source: {{queue: {queue}-shipped, exchange: {exchange}, routing_key: "order.shipped"}}
    start_workflow: {{name: {workflow}-undefined}}
"""


async def test_metrics_histograms_count_each_rules_events_and_conductor_calls(
    amqp_url: str,
    devserver: DevServer,
    conductor: ConductorClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway.pipeline")
    queue, exchange, workflow = unique("orders"), unique("events"), unique("order_flow")
    await conductor.register_workflow_def(wait_workflow(workflow))
    port = free_port()
    settings = make_settings(
        tmp_path, conductor_url=devserver.url, amqp_url=amqp_url, admin={"port": port}
    )
    async with running(settings, start_rules(queue, exchange, workflow)) as gateway:
        for n in range(3):
            await publish(amqp_url, exchange, "order.placed", {"n": n}, f"p-{n}")
        for n in range(2):
            await publish(amqp_url, exchange, "order.cancelled", {"n": n}, f"c-{n}")
        secret = {"n": 9, "card": "payload-secret"}  # its workflow is not defined: dead letter
        await publish(amqp_url, exchange, "order.shipped", secret, "s-9")

        async def settled() -> bool:
            return gateway.metrics.total("gateway_events_settled_total") >= 6

        await eventually(settled, timeout=30)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            text = (await http.get("/metrics")).text
            view = to_text(read_view(await read_admin(http)), width=200)  # gateway top --once

    families = {f.name: f for f in text_string_to_metric_families(text)}
    settle = families["gateway_event_settle_seconds"]
    assert settle.type == "histogram"
    for rule, event, count in (("order-placed", "placed", 3), ("order-cancelled", "cancelled", 2)):
        labels = {"rule": rule, "source": f"amqp:{queue}-{event}", "outcome": "started"}
        assert one(settle.samples, "gateway_event_settle_seconds_count", labels) == count
        buckets = buckets_of(settle.samples, "gateway_event_settle_seconds_bucket", labels)
        assert buckets[-1] == (float("inf"), count)
        assert [c for _, c in buckets] == sorted(c for _, c in buckets)  # cumulative
        assert one(settle.samples, "gateway_event_settle_seconds_sum", labels) > 0

    calls = families["gateway_conductor_request_seconds"]
    starts = {"operation": "start_workflow", "status_class": "2xx"}
    assert one(calls.samples, "gateway_conductor_request_seconds_count", starts) == 5
    # The counters keep their names and labels.
    received = families["gateway_events_received"]
    source = {"source": f"amqp:{queue}-placed"}
    assert one(received.samples, "gateway_events_received_total", source) == 3
    assert "\ngateway_in_flight 0\n" in text  # whole numbers stay whole for line-matching scrapers
    dead = {"rule": "order-shipped", "source": f"amqp:{queue}-shipped", "outcome": "dead_letter"}
    assert one(settle.samples, "gateway_event_settle_seconds_count", dead) == 1

    lines = [r for r in caplog.records if hasattr(r, "outcome")]
    started = [r for r in lines if r.levelno == logging.DEBUG and r.outcome == "started"]
    assert sorted(r.rule for r in started) == ["order-cancelled"] * 2 + ["order-placed"] * 3
    workflow_ids = {r.workflow_id for r in started}
    assert len(workflow_ids) == 5 and "-" not in workflow_ids  # one workflow each
    assert {r.event_id for r in started} >= {f"amqp:{queue}-placed:p-{n}" for n in range(3)}
    [failed] = [r for r in lines if r.outcome == "dead_letter"]
    assert failed.levelno == logging.WARNING and failed.rule == "order-shipped"
    assert failed.event_id == f"amqp:{queue}-shipped:s-9" and failed.ms > 0
    assert "payload-secret" not in caplog.text  # logging.log_payloads is off
    for workflow_id in workflow_ids:  # the live view lists each event with its workflow
        [line] = [line for line in view.splitlines() if workflow_id in line]
        assert "started" in line
    assert "dead letters 1" in view


def one(samples: list[Sample], name: str, labels: dict[str, str]) -> float:
    [value] = [s.value for s in samples if s.name == name and s.labels == labels]
    return value


def buckets_of(
    samples: list[Sample], name: str, labels: dict[str, str]
) -> list[tuple[float, float]]:
    found = [
        (float(s.labels["le"]), s.value)
        for s in samples
        if s.name == name and {k: v for k, v in s.labels.items() if k != "le"} == labels
    ]
    assert found, f"no {name} buckets for {labels}"
    return sorted(found)

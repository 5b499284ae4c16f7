"""The live view (`gateway dev`, `gateway top`) rendered to text from known metrics and events."""

from __future__ import annotations

from gateway.liveview import Sample, read_view, to_text
from gateway.metrics import Metrics


def known_gateway() -> Metrics:
    """Two demo events settled: an order started a workflow, a payment signalled it."""
    metrics = Metrics()
    metrics.gauge_fn("gateway_conductor_ready", lambda: 1.0)
    metrics.gauge_fn("gateway_completions_published_total", lambda: 1.0)
    for event_id, rule, source, workflow_id, outcome in (
        ("kafka:orders:0:0", "order-created", "kafka:orders", "wf-order-1", "started"),
        ("amqp:payments:m-1", "payment-captured", "amqp:payments", "wf-order-1", "done"),
    ):
        metrics.event_received(source)
        metrics.event_settled([rule], source, outcome, 0.012)
        metrics.remember(event_id, [rule], [workflow_id], outcome, 0.012)
    return metrics


def test_the_view_shows_both_demo_events_with_their_workflow_ids() -> None:
    metrics = known_gateway()
    before = Sample(Metrics().render(), at=100.0)  # nothing settled one second earlier
    now = Sample(metrics.render(), metrics.recent_events(), at=101.0)

    text = to_text(read_view(now, before))

    [order] = [line for line in text.splitlines() if "kafka:orders:0:0" in line]
    [payment] = [line for line in text.splitlines() if "amqp:payments:m-1" in line]
    assert "order-created" in order and "wf-order-1" in order and "started" in order
    assert "payment-captured" in payment and "wf-order-1" in payment and "done" in payment
    [rule_row] = [line for line in text.splitlines() if "order-created" in line and "1.0" in line]
    assert "started 1" in rule_row  # events/s over the refresh, and outcomes so far
    assert "Conductor ready" in text
    assert "dead letters 0" in text and "completions published 1" in text


def test_the_view_names_what_keeps_the_gateway_from_being_ready() -> None:
    sample = Sample(Metrics().render(), reasons=["conductor: not reachable"], rules=["orders"])
    text = to_text(read_view(sample))
    [row] = [line for line in text.splitlines() if "orders" in line]
    assert "0.0" in row  # a loaded rule is listed before its first event
    assert "Conductor opening" in text  # no client yet: its readiness gauge is not there
    assert "not ready: conductor: not reachable" in text

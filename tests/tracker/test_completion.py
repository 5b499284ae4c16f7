"""CloudEvents built and encoded to the Kafka and AMQP bindings; decoded by the SDK's parser."""

from __future__ import annotations

import json

from cloudevents.v1.http import from_json
from cloudevents.v1.kafka import KafkaMessage, from_binary

from gateway.completion import (
    STRUCTURED_CONTENT_TYPE,
    Trigger,
    build_event,
    build_reply,
    build_run_event,
    encode,
    reply_destination,
)
from gateway.conductor.models import Workflow, WorkflowRun
from gateway.plan import Destination
from gateway.statuses import TERMINAL_WORKFLOW

WF = Workflow.model_validate(
    {
        "workflowId": "wf-123",
        "workflowName": "order_flow",
        "workflowVersion": 2,
        "status": "TIMED_OUT",
        "correlationId": "order-9",
        "output": {"total": 12.5},
        "reasonForIncompletion": "task timed out",
        "startTime": 1_764_201_600_000,
        "endTime": 1_764_201_661_234,
    }
)
TRIGGER = Trigger("orders start", "kafka:orders:0:41", "kafka:orders")

EXPECTED_ATTRIBUTES = {
    "specversion": "1.0",
    "id": "wf-123:TIMED_OUT:1764201661234",
    "source": "/conductor-gateway/rules/orders%20start",
    "type": "io.conductor.workflow.timed_out",
    "subject": "wf-123",
    "time": "2025-11-27T00:01:01.234Z",
    "datacontenttype": "application/json",
}
EXPECTED_DATA = {
    "workflowId": "wf-123",
    "workflowType": "order_flow",
    "version": 2,
    "status": "TIMED_OUT",
    "correlationId": "order-9",
    "output": {"total": 12.5},
    "reasonForIncompletion": "task timed out",
    "startTime": 1_764_201_600_000,
    "endTime": 1_764_201_661_234,
    "triggerEventId": "kafka:orders:0:41",
    "triggerSource": "kafka:orders",
    "rule": "orders start",
}


def test_structured_event_has_exact_attributes_and_data() -> None:
    out = encode(build_event(WF, TRIGGER), Destination.parse("kafka:done"), "structured")
    assert out.content_type == STRUCTURED_CONTENT_TYPE
    assert out.key == "wf-123" and out.headers == {}
    document = json.loads(out.body)
    assert document == {**EXPECTED_ATTRIBUTES, "data": EXPECTED_DATA}
    parsed = from_json(out.body)  # the CloudEvents SDK accepts it
    assert parsed["id"] == "wf-123:TIMED_OUT:1764201661234" and parsed.data == EXPECTED_DATA


def test_kafka_binary_mode_uses_ce_headers_and_content_type() -> None:
    out = encode(build_event(WF, TRIGGER), Destination.parse("kafka:done"), "binary")
    assert out.content_type == "application/json" and out.key == "wf-123"
    assert out.headers == {
        f"ce_{k}": v for k, v in EXPECTED_ATTRIBUTES.items() if k != "datacontenttype"
    }
    assert json.loads(out.body) == EXPECTED_DATA
    headers = {k: v.encode() for k, v in out.headers.items()}
    headers["content-type"] = out.content_type.encode()
    parsed = from_binary(KafkaMessage(headers, out.key, out.body))
    assert parsed["type"] == "io.conductor.workflow.timed_out"
    assert parsed["datacontenttype"] == "application/json"


def test_amqp_binary_mode_uses_cloudevents_prefix_and_no_key() -> None:
    out = encode(build_event(WF, TRIGGER), Destination.parse("amqp:done"), "binary")
    assert out.key is None
    assert out.headers["cloudEvents:id"] == "wf-123:TIMED_OUT:1764201661234"
    assert out.headers["cloudEvents:specversion"] == "1.0"
    assert "cloudEvents:datacontenttype" not in out.headers


def test_types_per_status() -> None:
    for status in ("COMPLETED", "FAILED", "TERMINATED", "PAUSED", "RUNNING"):
        event = build_event(WF.model_copy(update={"status": status}), TRIGGER)
        assert event.attributes["type"] == f"io.conductor.workflow.{status.lower()}"
        # the end time of a terminal status, else the start time
        mark = 1_764_201_661_234 if status in TERMINAL_WORKFLOW else 1_764_201_600_000
        assert event.id == f"wf-123:{status}:{mark}"


def test_reply_for_a_synchronous_run() -> None:
    run = WorkflowRun.model_validate(
        {
            "workflowId": "wf-7",
            "status": "COMPLETED",
            "output": {"ok": True},
            "createTime": 1_764_201_600_000,
            "updateTime": 1_764_201_600_500,
        }
    )
    out = build_reply(
        run,
        rule="rpc",
        trigger_event_id="amqp:requests:m-1",
        trigger_source="amqp:requests",
        workflow_name="quote",
    )
    document = json.loads(out.body)
    assert document["id"] == "wf-7:COMPLETED:1764201600500"  # ended at its last update
    assert document["type"] == "io.conductor.workflow.completed"
    assert document["data"]["output"] == {"ok": True}
    assert document["data"]["workflowType"] == "quote"
    assert document["data"]["triggerEventId"] == "amqp:requests:m-1"
    assert str(reply_destination("amq.gen-abc")) == "amqp:amq.gen-abc"


def test_reply_for_a_run_without_workflow_id_has_no_empty_subject_or_id() -> None:
    # CloudEvents: `subject`, when present, and `id` must be non-empty strings.
    trigger = Trigger("rpc", "amqp:requests:m-1", "amqp:requests")
    for run_json, expected_id in (
        ({"requestId": "req-5", "status": "FAILED"}, "request:req-5:FAILED"),
        ({"status": "FAILED"}, "request:amqp:requests:m-1:FAILED"),
    ):
        run = WorkflowRun.model_validate(run_json)
        event = build_run_event(run, trigger)
        assert event.id == expected_id
        assert "subject" not in event.attributes
        document = json.loads(encode(event, Destination.parse("kafka:replies"), "structured").body)
        parsed = from_json(json.dumps(document).encode())
        assert parsed["id"] == expected_id and parsed.get("subject") is None
        binary = encode(event, Destination.parse("kafka:replies"), "binary")
        assert binary.key is None and "ce_subject" not in binary.headers


def test_status_listener_message_relays_as_the_same_event() -> None:
    from gateway.completion import build_listener_event

    message = {
        "workflowName": "order_flow",
        "eventType": "terminated",  # how the listener reports a TIMED_OUT workflow
        "payload": {
            "workflowId": "wf-123",
            "workflowType": "order_flow",
            "version": 2,
            "status": "TIMED_OUT",
            "correlationId": "order-9",
            "output": {"total": 12.5},
            "reasonForIncompletion": "task timed out",
            "startTime": "2025-11-27T00:00:00.000Z",
            "endTime": "2025-11-27T00:01:01.234Z",
        },
    }
    event = build_listener_event(message, TRIGGER)
    assert event is not None
    assert dict(event.attributes) == EXPECTED_ATTRIBUTES
    assert dict(event.data) == EXPECTED_DATA
    assert build_listener_event({**message, "eventType": "finalized"}, TRIGGER) is None
    running = {
        **message,
        "eventType": "started",
        "payload": {"workflowId": "w", "status": "RUNNING"},
    }
    assert build_listener_event(running, TRIGGER) is None  # not asked for

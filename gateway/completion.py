"""Completion events: CloudEvents 1.0 built from a workflow, encoded for Kafka or AMQP.

Attributes:
- `specversion` "1.0"
- `id` `<workflowId>:<status>:<run mark>`: deterministic, so a consumer drops the duplicates
  that at-least-once delivery can produce (a redelivered event carries the same id). The run
  mark is the end time (epoch ms) for a terminal status and the start time for a transition:
  Conductor OSS sets a new end time each time a retried, restarted or rerun workflow ends and a
  new start time on restart, so the same status reached again by another run gets another id
- `source` `/conductor-gateway/rules/<rule>` (a URI-reference; the rule name percent-encoded)
- `type` `io.conductor.workflow.<status lowercased>` (completed, failed, timed_out, terminated,
  paused, running)
- `subject` the workflow id (absent from an execute answer without one; its id is then
  `request:<requestId or trigger event id>:<status>:<run mark>`)
- `time` the workflow's end time (else its last update), RFC 3339 UTC
- `datacontenttype` application/json

Content modes, following the CloudEvents protocol bindings:
- structured (default): the whole event as JSON, content type
  `application/cloudevents+json; charset=UTF-8` (Kafka: the `content-type` header; AMQP: the
  content-type property).
- binary: the body is `data` alone with content type `application/json`; every other attribute
  is a header: `ce_<name>` on Kafka (Kafka binding 3.2.3), `cloudEvents:<name>` application
  properties on AMQP (AMQP binding 3.1.3.1; RabbitMQ maps AMQP 1.0 application-properties to
  0-9-1 headers, so AMQP 1.0 consumers read them under the same names).
The Kafka record key is the workflow id in both modes (per-workflow ordering).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple
from urllib.parse import quote

import orjson

from gateway.conductor.models import Workflow, WorkflowRun
from gateway.plan import Destination
from gateway.statuses import TERMINAL_WORKFLOW

Mode = Literal["structured", "binary"]

TRANSITIONS = frozenset({"PAUSED", "RUNNING"})  # optional, published when first seen
SPECVERSION = "1.0"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json; charset=UTF-8"
DATA_CONTENT_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class Trigger:
    """What made the gateway act: the rule and the incoming event."""

    rule: str
    event_id: str  # Event.source_id
    source: str  # Event.channel


@dataclass(frozen=True, slots=True)
class CompletionEvent:
    """A CloudEvent: context attributes (all strings) and JSON data."""

    attributes: Mapping[str, str]
    data: Mapping[str, Any]

    @property
    def id(self) -> str:
        return self.attributes["id"]

    def to_json(self) -> dict[str, Any]:
        """The structured-mode JSON document (JSON event format)."""
        return {**self.attributes, "data": dict(self.data)}


class Outgoing(NamedTuple):
    """What to hand to `Publisher.publish`."""

    body: bytes
    headers: dict[str, str]
    content_type: str
    key: str | None


def source_uri(rule: str) -> str:
    return "/conductor-gateway/rules/" + quote(rule, safe="")


def event_type(status: str) -> str:
    return "io.conductor.workflow." + status.lower()


def rfc3339(epoch_ms: int | None) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC) if epoch_ms else datetime.now(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_event(workflow: Workflow, trigger: Trigger) -> CompletionEvent:
    """The event for the workflow's current status."""
    return _event(
        workflow_id=workflow.workflow_id,
        status=workflow.status,
        when=workflow.end_time or workflow.update_time,
        mark=run_mark(
            workflow.status, workflow.end_time, workflow.start_time or workflow.create_time
        ),
        data={
            "workflowId": workflow.workflow_id,
            "workflowType": workflow.workflow_name,
            "version": workflow.workflow_version,
            "status": workflow.status,
            "correlationId": workflow.correlation_id,
            "output": workflow.output,
            "reasonForIncompletion": workflow.reason_for_incompletion,
            "startTime": workflow.start_time,
            "endTime": workflow.end_time,
        },
        trigger=trigger,
    )


def build_run_event(
    run: WorkflowRun, trigger: Trigger, *, workflow_name: str | None = None
) -> CompletionEvent:
    """The event for a synchronous execution's answer (`execute_workflow`)."""
    status = run.status or "RUNNING"
    end = run.update_time if status in TERMINAL_WORKFLOW else None
    return _event(
        workflow_id=run.workflow_id,
        status=status,
        # CloudEvents forbids an empty subject or id: an answer without a workflow id (a run
        # refused before it started) has no subject and an id from the request instead.
        id_base=run.workflow_id or f"request:{run.request_id or trigger.event_id}",
        when=run.update_time,
        mark=run_mark(status, end, run.create_time),
        data={
            "workflowId": run.workflow_id,
            "workflowType": workflow_name,
            "version": None,
            "status": status,
            "correlationId": run.correlation_id,
            "output": run.output,
            "reasonForIncompletion": None,
            "startTime": run.create_time,
            "endTime": end,
        },
        trigger=trigger,
    )


def run_mark(status: str, end_time: int | None, start_time: int | None) -> int | None:
    """What tells this run's `status` from the same status reached by a later run.

    Checked on Conductor OSS 3.x: a terminal status gets a new `endTime` whenever a retried,
    restarted or rerun workflow ends again, and re-reading an ended workflow gives the same one;
    restart also sets a new `startTime`. A retried workflow keeps its old `endTime` while it is
    RUNNING again, so a transition is marked by the start time, never the end time.
    """
    return (end_time if status in TERMINAL_WORKFLOW else start_time) or None


def _event(
    *,
    workflow_id: str | None,
    status: str,
    when: int | None,
    mark: int | None,
    data: dict[str, Any],
    trigger: Trigger,
    id_base: str | None = None,
) -> CompletionEvent:
    base = f"{id_base or workflow_id}:{status}"
    attributes = {
        "specversion": SPECVERSION,
        "id": base if mark is None else f"{base}:{mark}",
        "source": source_uri(trigger.rule),
        "type": event_type(status),
        "time": rfc3339(when),
        "datacontenttype": DATA_CONTENT_TYPE,
    }
    if workflow_id:
        attributes["subject"] = workflow_id
    data.update(
        {"triggerEventId": trigger.event_id, "triggerSource": trigger.source, "rule": trigger.rule}
    )
    return CompletionEvent(attributes, data)


def encode(event: CompletionEvent, destination: Destination, mode: Mode) -> Outgoing:
    """Body, headers and content type for the destination's broker in the given mode."""
    key = event.attributes.get("subject") if destination.kind == "kafka" else None
    if mode == "structured":
        return Outgoing(orjson.dumps(event.to_json()), {}, STRUCTURED_CONTENT_TYPE, key)
    prefix = "ce_" if destination.kind == "kafka" else "cloudEvents:"
    headers = {
        prefix + name: value
        for name, value in event.attributes.items()
        if name != "datacontenttype"  # it travels as the message's content type
    }
    return Outgoing(orjson.dumps(dict(event.data)), headers, DATA_CONTENT_TYPE, key)


def build_reply(
    run: WorkflowRun,
    *,
    rule: str,
    trigger_event_id: str,
    trigger_source: str,
    workflow_name: str | None = None,
    mode: Mode = "structured",
) -> Outgoing:
    """The answer to an AMQP request whose rule ran `execute_workflow`.

    The daemon publishes it to the request's reply-to queue with the request's correlation id:

        out = build_reply(run, rule=plan.rule, trigger_event_id=event.source_id,
                          trigger_source=event.channel, workflow_name=plan.params["name"])
        await publisher.publish(reply_destination(event.reply_to), out.body,
                                headers=out.headers, content_type=out.content_type,
                                correlation_id=event.correlation_id)

    A run that had not finished within wait_for_seconds answers with its current status
    (type io.conductor.workflow.running); track it to publish the rest.
    """
    trigger = Trigger(rule, trigger_event_id, trigger_source)
    event = build_run_event(run, trigger, workflow_name=workflow_name)
    return encode(event, Destination("amqp", "", "reply"), mode)


def reply_destination(reply_to: str) -> Destination:
    """An AMQP reply-to names a queue on the default exchange."""
    return Destination("amqp", "", reply_to)


def build_listener_event(
    message: Mapping[str, Any], trigger: Trigger, statuses: frozenset[str] = TERMINAL_WORKFLOW
) -> CompletionEvent | None:
    """Relay: the CloudEvent for one message of Conductor's Kafka status listener, or None.

    The listener's value is `{"workflowName", "eventType", "payload": WorkflowSummary}`
    (conductor-api.md §6.1). FAILED and TIMED_OUT arrive as eventType `terminated`, so the
    status is taken from the payload; `finalized` repeats completed/terminated and is skipped.
    The event is the same one the tracker would publish (same id), so both paths deduplicate.
    """
    payload = message.get("payload")
    if message.get("eventType") == "finalized" or not isinstance(payload, Mapping):
        return None
    status = str(payload.get("status") or "")
    workflow_id = str(payload.get("workflowId") or "")
    if status not in statuses or not workflow_id:
        return None
    end = _epoch_ms(payload.get("endTime"))
    output = payload.get("output")
    start = _epoch_ms(payload.get("startTime"))
    return _event(
        workflow_id=workflow_id,
        status=status,
        when=end or _epoch_ms(payload.get("updateTime")),
        mark=run_mark(status, end, start),
        data={
            "workflowId": workflow_id,
            "workflowType": payload.get("workflowType") or message.get("workflowName"),
            "version": payload.get("version"),
            "status": status,
            "correlationId": payload.get("correlationId"),
            "output": output if isinstance(output, dict) else {},
            "reasonForIncompletion": payload.get("reasonForIncompletion"),
            "startTime": start,
            "endTime": end,
        },
        trigger=trigger,
    )


def _epoch_ms(value: Any) -> int | None:
    """Conductor summaries give times as epoch ms or ISO strings (`...T12:00:00.000Z`)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value:
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            return None
    return None

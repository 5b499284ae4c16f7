"""EVENT (tasks/Event, mapper/EventTaskMapper): publish the task's output to `sink`.

The input is the inputParameters plus `sink` and `asyncComplete`; the output adds the
workflow's id, type, version, correlationId and taskToDomain and `event_produced` (the queue
name), and that whole output is the message, as Event.getPopulatedMessage sends it.

Sinks: `conductor` / `conductor:<name>` are Conductor's internal queues; the dev server has no
event handlers, so such a task completes and the message goes nowhere. `kafka:<topic>`,
`amqp:<queue>` (or `amqp_queue:`) and `amqp_exchange:<exchange>[?routingKey=<key>]` go to the
server's publisher (`DevServer(event_publisher=...)`; `gateway dev` passes one on its Kafka and
RabbitMQ). Without one the task fails as on a Conductor without that queue provider, and the
reason says what to set. With `asyncComplete` the task stays IN_PROGRESS after publishing.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from typing import TYPE_CHECKING, Any

from gateway.devserver.mapping import resolve
from gateway.devserver.models import WorkflowTask
from gateway.devserver.tasks.base import Problem, Runtime, TaskHandler, required
from gateway.devserver.tasks.later import end_task

if TYPE_CHECKING:
    from gateway.devserver.state import TaskRecord, WorkflowRecord

_PUBLISHING: set[asyncio.Task[None]] = set()  # strong references while in flight
NO_PUBLISHER = (
    "; the dev server publishes kafka: and amqp: sinks only when it has a publisher: run it "
    "under `gateway dev` (its Kafka and RabbitMQ), or pass DevServer(event_publisher=...)"
)


def _extra(wt: WorkflowTask, key: str) -> Any:
    return (wt.model_extra or {}).get(key)


def destination(sink: str) -> str | None:
    """The gateway destination (gateway.plan.Destination) for a Conductor sink, or None."""
    kind, _, rest = sink.partition(":")
    if not rest:
        return None
    if kind == "kafka":
        return f"kafka:{rest}"
    if kind in ("amqp", "amqp_queue"):
        return f"amqp:{rest.split('?', 1)[0]}"
    if kind == "amqp_exchange":
        exchange, _, query = rest.partition("?")
        key = urllib.parse.parse_qs(query).get("routingKey", [""])[0]
        return f"amqp:{exchange}/{key}"
    return None


class Event(TaskHandler):
    type = "EVENT"
    own_task_id = True

    def validate(self, wt: WorkflowTask, path: str) -> list[Problem]:
        return [] if _extra(wt, "sink") else [required(wt, path, "sink")]

    def input_for(
        self, rt: Runtime, wf: WorkflowRecord, wt: WorkflowTask, task_id: str
    ) -> dict[str, Any]:
        # EventTaskMapper puts `sink` and `asyncComplete` among the inputParameters.
        data = rt.task_input(wf, wt, task_id)
        data["sink"] = resolve(_extra(wt, "sink"), rt.context(wf), task_id)
        data["asyncComplete"] = bool(_extra(wt, "asyncComplete"))
        return data

    def start(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> None:
        sink = str(task.input_data.get("sink") or "")
        queue = _queue_name(sink, wf, task)
        task.status = "IN_PROGRESS"
        task.start_time = rt.store.now()
        task.output_data.update(task.input_data)
        task.output_data.update(
            workflowInstanceId=wf.workflow_id,
            workflowType=wf.name,
            workflowVersion=wf.version,
            correlationId=wf.correlation_id,
            taskToDomain=wf.task_to_domain,
            event_produced=queue,
        )
        if queue.startswith("conductor:"):
            self._published(rt, task)
            return
        target = destination(queue)
        if target is None or rt.store.publish is None:
            kind = queue.partition(":")[0]
            reason = f"Error loading queue:{queue}, for task:{task.task_id}, error: "
            reason += f"Unknown queue type {kind}"
            rt.finish(task, "FAILED", reason + (NO_PUBLISHER if target else ""))
            return
        payload = json.dumps(task.output_data).encode()
        publishing = asyncio.get_running_loop().create_task(
            self._publish(rt, wf, task, target, payload)
        )
        _PUBLISHING.add(publishing)
        publishing.add_done_callback(_PUBLISHING.discard)

    async def _publish(
        self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord, target: str, payload: bytes
    ) -> None:
        assert rt.store.publish is not None
        try:
            await rt.store.publish(target, payload)
        except Exception as exc:  # any broker error fails the task with its text
            end_task(rt, wf, task, "FAILED", {}, f"Error publishing to {target}: {exc}")
            return
        if not task.input_data.get("asyncComplete"):
            end_task(rt, wf, task, "COMPLETED", {})

    @staticmethod
    def _published(rt: Runtime, task: TaskRecord) -> None:
        if not task.input_data.get("asyncComplete"):
            rt.finish(task, "COMPLETED")


def _queue_name(sink: str, wf: WorkflowRecord, task: TaskRecord) -> str:
    """Event.computeQueueName: `conductor` sinks are per workflow (and task)."""
    if sink == "conductor":
        return f"conductor:{wf.name}:{task.ref}"
    if sink.startswith("conductor:"):
        return f"conductor:{wf.name}:{sink.removeprefix('conductor:')}"
    return sink

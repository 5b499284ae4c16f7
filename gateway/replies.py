"""Answers to requests: a rule with `reply:` answers the message's reply-to (or a fixed
destination) with the workflow's run, as a CloudEvent built by `gateway.completion`.

- execute_workflow: the run is answered at once; a run still going when `wait_for_seconds`
  ran out is answered with its current status and tracked, so the end is answered as well.
- start_workflow: answered at once with the new workflow id (status RUNNING), or, with
  `wait_for_completion: true`, only when the workflow ends (the tracker answers).

The answer goes out before the request is settled, so a crash in between repeats it: replies
are at least once, and each carries the CloudEvent id `<workflowId>:<status>:<run mark>` for dedupe.
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.completion import build_reply, reply_destination
from gateway.conductor.models import WorkflowRun
from gateway.events import Event
from gateway.plan import Destination, Plan
from gateway.sinks.base import Sink
from gateway.statuses import TERMINAL_WORKFLOW
from gateway.store.base import TrackRequest

log = logging.getLogger(__name__)


def reply_target(plan: Plan, event: Event) -> Destination | None:
    if plan.reply is None:
        return None
    if plan.reply.destination is not None:
        return plan.reply.destination
    if not event.reply_to:
        return None
    if event.source == "kafka":  # the reply-topic header
        return Destination("kafka", event.reply_to)
    return reply_destination(event.reply_to)


class Replies:
    def __init__(self, client: Any, publisher: Sink | None) -> None:
        self._client = client
        self._publisher = publisher

    def track(self, plan: Plan, event: Event, run: WorkflowRun) -> TrackRequest | None:
        """The outbox row to record with the start: a later answer, else the completion."""
        target = reply_target(plan, event)
        if target is not None and self._answer_later(plan, run):
            completion = plan.completion  # published beside the answer, from the same row
            return TrackRequest(
                str(target),
                TERMINAL_WORKFLOW,
                plan.rule,
                event.source_id,
                event.channel,
                event.correlation_id,
                also_destination=None if completion is None else str(completion.destination),
                also_statuses=frozenset() if completion is None else completion.statuses,
            )
        if plan.completion is not None:
            return TrackRequest(
                str(plan.completion.destination),
                plan.completion.statuses,
                plan.rule,
                event.source_id,
                event.channel,
            )
        return None

    @staticmethod
    def _answer_later(plan: Plan, run: WorkflowRun) -> bool:
        if plan.reply is None or run.status in TERMINAL_WORKFLOW:
            return False
        return plan.method == "execute_workflow" or plan.reply.wait_for_completion

    async def answer(self, plan: Plan, event: Event, run: WorkflowRun) -> None:
        """Publish the answer now, unless only the workflow's end is to be answered."""
        target = reply_target(plan, event)
        if plan.reply is None:
            return
        if target is None:
            log.warning(
                "rule '%s': %s has no reply-to; nothing to answer", plan.rule, event.source_id
            )
            return
        if plan.reply.wait_for_completion and run.status not in TERMINAL_WORKFLOW:
            return  # the tracker answers when the workflow ends
        if self._publisher is None:
            raise RuntimeError("replies need a publisher")
        out = build_reply(
            run,
            rule=plan.rule,
            trigger_event_id=event.source_id,
            trigger_source=event.channel,
            workflow_name=plan.params.get("name"),
        )
        await self._publisher.publish(
            target,
            out.body,
            key=out.key,
            headers=out.headers,
            content_type=out.content_type,
            correlation_id=event.correlation_id,
        )

    async def current(self, plan: Plan, workflow_id: str) -> WorkflowRun:
        """The run of a workflow started earlier (a repeated request is answered again)."""
        if plan.reply is None:
            return WorkflowRun(workflow_id=workflow_id, status="RUNNING")
        wf = await self._client.get_workflow(workflow_id, include_tasks=False)
        return WorkflowRun(
            workflow_id=wf.workflow_id,
            status=wf.status,
            input=wf.input,
            output=wf.output,
            variables=wf.variables,
            correlation_id=wf.correlation_id,
        )

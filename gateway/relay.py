"""The relay: Conductor OSS's own workflow status events, republished as CloudEvents.

Conductor OSS with `conductor.workflow-status-listener.type=kafka` publishes one record per
status change of every workflow whose definition sets `workflowStatusListenerEnabled: true`:
key the workflow id, value `{"workflowName", "eventType", "payload": WorkflowSummary}` (checked
in conductor-oss's KafkaWorkflowStatusPublisher). The relay reads that topic (`relay.topic`),
keeps the records whose workflow name (`relay.workflow_names`, empty: all) and event type
(`relay.event_types`) are asked for, and publishes each as the CloudEvent the tracker would
(`gateway.completion.build_listener_event`: same attributes, same id for the same ending).

Workflows the gateway started are left out (`relay.include_gateway_started: false`): their
events are the tracker's to publish. The store says which, one query per fetched batch; a start
whose record is not yet written when its workflow's event is read (a workflow that ends within
milliseconds of its start) is relayed, with the id the tracker gives it, so a consumer drops the
duplicate by id. Offsets are committed after the broker confirmed the batch's events: at least
once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import orjson

from gateway.completion import TRANSITIONS, Mode, Trigger, build_listener_event, encode
from gateway.errors import PublishError
from gateway.plan import Destination
from gateway.settings import KafkaSettings, RelaySettings
from gateway.sinks.base import Sink
from gateway.sources.status import StatusRecord, StatusTopic
from gateway.statuses import TERMINAL_WORKFLOW
from gateway.store.base import Store

log = logging.getLogger(__name__)

RULE = "relay"  # the CloudEvent source: /conductor-gateway/rules/relay
RETRY_SECONDS = 2.0  # a batch whose events were not all confirmed is read again after this


class Relay:
    """`async with Relay(settings.relay, settings.kafka, publisher):` relays in the background."""

    def __init__(
        self,
        settings: RelaySettings,
        kafka: KafkaSettings,
        publisher: Sink,
        *,
        mode: Mode,
        store: Store | None = None,
    ) -> None:
        assert settings.topic and settings.destination, "relay.topic and relay.destination"
        self.settings = settings
        self.kafka = kafka
        self.destination = Destination.parse(settings.destination)
        self.publisher = publisher
        self.mode = mode
        # None: relay every workflow's events (no store to tell the gateway's own starts)
        self.store = None if settings.include_gateway_started else store
        self.published = 0
        self.skipped = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Relay:
        self._task = asyncio.create_task(self.run(), name="status-relay")
        return self

    async def __aexit__(self, *exc: object) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        topic = str(self.settings.topic)
        while True:
            try:
                async with StatusTopic(self.kafka, topic, self.settings.group_id) as status:
                    log.info("relaying %s to %s", topic, self.destination)
                    await self._relay(status)
            except asyncio.CancelledError:
                raise
            except Exception:  # the broker went away: start over from the last commit
                log.exception("status relay from %s failed; starting again", topic)
                await asyncio.sleep(RETRY_SECONDS)

    async def _relay(self, status: StatusTopic) -> None:
        while True:
            records = await status.fetch()
            if not records:
                continue
            if await self._publish_all(records):
                await status.commit()
            else:
                await asyncio.sleep(RETRY_SECONDS)
                await status.rewind()

    async def _publish_all(self, records: Sequence[StatusRecord]) -> bool:
        wanted = [(r, m) for r, m in ((r, _message(r.value)) for r in records) if m is not None]
        wanted = [(r, m) for r, m in wanted if self._wanted(m)]
        ours = await self._started_here([_workflow_id(m) for _, m in wanted])
        self.skipped += len(records) - len(wanted)
        for record, message in wanted:
            if _workflow_id(message) in ours:
                self.skipped += 1
            elif not await self._publish(record, message):
                return False
        return True

    async def _started_here(self, workflow_ids: list[str]) -> set[str]:
        if self.store is None or not workflow_ids:
            return set()
        return await self.store.started_workflows(workflow_ids)

    async def _publish(self, record: StatusRecord, message: dict[str, Any]) -> bool:
        """Publish the record's event; False if not confirmed."""
        trigger = Trigger(
            RULE,
            f"kafka:{record.topic}:{record.partition}:{record.offset}",
            f"kafka:{record.topic}",
        )
        event = build_listener_event(message, trigger, TERMINAL_WORKFLOW | TRANSITIONS)
        if event is None:
            self.skipped += 1
            return True
        out = encode(event, self.destination, self.mode)
        try:
            await self.publisher.publish(
                self.destination,
                out.body,
                key=out.key,
                headers=out.headers,
                content_type=out.content_type,
            )
        except PublishError as exc:
            log.warning("relayed event %s not published, will retry: %s", event.id, exc)
            return False
        self.published += 1
        return True

    def _wanted(self, message: dict[str, Any]) -> bool:
        names = self.settings.workflow_names
        return message.get("eventType") in self.settings.event_types and (
            not names or message.get("workflowName") in names
        )


def _message(value: bytes) -> dict[str, Any] | None:
    try:
        message = orjson.loads(value)
    except orjson.JSONDecodeError:
        log.warning("status listener record is not JSON; skipped")
        return None
    return message if isinstance(message, dict) else None


__all__ = ["Relay"]


def _workflow_id(message: dict[str, Any]) -> str:
    payload = message.get("payload")
    return str(payload.get("workflowId", "")) if isinstance(payload, dict) else ""

"""Execute one Plan against Conductor: find the target, make the call, treat repeats as done.

Every source delivers at least once, so every action must tolerate running twice. The treatment
per action (documented in the README's `guarantees` section):

- start_workflow / execute_workflow: deduplicated by the gateway's store (key: the rule's
  idempotency key, default `<source id>#<rule>`); Orkes also gets the key with RETURN_EXISTING.
  The workflow id is recorded before the delivery is settled. Within one process, starts of
  one key run one at a time (find, start, record), so two deliveries racing for a key (a
  republished AMQP message, one business key on two partitions) start one workflow; the id
  the store kept first is the one answered and reported. With `reply:`, the run is
  answered (gateway.replies) before settling too, and answered again on a repeat.
- terminate of a TERMINATED workflow, pause of a PAUSED one, resume of a RUNNING one: no-ops
  that count as success (OSS answers resume-of-running with a 500).
- retry, restart, rerun of a workflow that is RUNNING again: success when the message may have
  been processed before (a redelivery), otherwise the Conductor error stands (dead letter).
- signal / complete / fail a task: a workflow with no waiting task is treated like a missing
  target (the rule's on_missing policy), so a signal that races ahead of its WAIT task retries.
- update_variables: setting the same values twice is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from gateway.coalesce import Coalescer
from gateway.conductor.models import WorkflowRun
from gateway.errors import ConductorError, DeadLetter, NotFound, RetryLater, TransientError
from gateway.events import Event
from gateway.plan import Plan, Target
from gateway.ratelimit import RateLimits
from gateway.replies import Replies
from gateway.sinks.base import Sink
from gateway.store.base import Store

log = logging.getLogger(__name__)

ACTIVE = frozenset({"RUNNING", "PAUSED"})
TERMINAL = frozenset({"COMPLETED", "FAILED", "TIMED_OUT", "TERMINATED"})
RETRYABLE = frozenset({"FAILED", "TIMED_OUT", "TERMINATED"})
STARTS = frozenset({"start_workflow", "execute_workflow"})
TASK_METHODS = frozenset({"signal", "update_task"})


@dataclass(frozen=True, slots=True)
class ActionStates:
    """Which workflow states an action applies to, and which mean it already happened."""

    eligible: frozenset[str]  # empty: any state
    noop: frozenset[str] = frozenset()  # success without a call, always
    repeated: frozenset[str] = frozenset()  # success when the delivery may be a redelivery


STATES: dict[str, ActionStates] = {
    "terminate": ActionStates(ACTIVE, noop=frozenset({"TERMINATED"})),
    "pause": ActionStates(frozenset({"RUNNING"}), noop=frozenset({"PAUSED"})),
    "resume": ActionStates(frozenset({"PAUSED"}), noop=frozenset({"RUNNING"})),
    "signal": ActionStates(ACTIVE),
    "update_task": ActionStates(ACTIVE),
    "update_variables": ActionStates(frozenset()),
    "retry": ActionStates(RETRYABLE, repeated=frozenset({"RUNNING"})),
    "restart": ActionStates(TERMINAL, repeated=frozenset({"RUNNING"})),
    "rerun": ActionStates(TERMINAL, repeated=frozenset({"RUNNING"})),
}


@dataclass(frozen=True, slots=True)
class Context:
    """What the executor needs to know about the delivery beyond the event."""

    event: Event
    suspect: bool  # may have been processed before (redelivery, or just after a restart)
    first_seen: float  # epoch seconds
    # The workflows the plans started or acted on, for the settled-event log line.
    workflow_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Found:
    workflow_id: str
    status: str
    start_time: float


@dataclass(slots=True)
class _KeyLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    holders: int = 0  # tasks holding or waiting for the lock


class KeyLocks:
    """One asyncio.Lock per key, present only while some task holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[str, _KeyLock] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        entry = self._locks.setdefault(key, _KeyLock())
        entry.holders += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.holders -= 1
            if entry.holders == 0:
                del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)


class Conductor(Protocol):
    """The part of ConductorClient the executor uses (method names come from plans)."""

    async def get_by_correlation_id(
        self, name: str, correlation_id: str, include_closed: bool = ..., include_tasks: bool = ...
    ) -> Sequence[Any]: ...

    async def get_by_correlation_ids(
        self, name: str, correlation_ids: Sequence[str], include_closed: bool = ...
    ) -> dict[str, list[str]]: ...

    async def search(
        self,
        query: str | None = ...,
        free_text: str = ...,
        start: int = ...,
        size: int = ...,
        sort: str | None = ...,
    ) -> Any: ...

    async def get_status(self, workflow_id: str) -> Any: ...


def start_key(plan: Plan, event: Event) -> str:
    """The dedupe key of a start: the rule's key, else the message's stable id and the rule.

    The rule name is added to the default key so two rules starting workflows for one event
    (match_mode: all) do not take each other's record for their own.
    """
    key = plan.idempotency_key
    if not key or key == event.source_id:
        return default_key(plan, event)
    return key


def default_key(plan: Plan, event: Event) -> str:
    return f"{event.source_id}#{plan.rule}"


class Executor:
    """Runs plans; raises Conductor errors or Outcomes (DeadLetter/RetryLater) for settlement."""

    def __init__(
        self,
        client: Any,
        store: Store,
        *,
        publisher: Sink | None = None,
        orkes_idempotency: bool = False,
    ) -> None:
        self._client = client
        self._store = store
        self._replies = Replies(client, publisher)
        self._orkes_idempotency = orkes_idempotency
        self._limits = RateLimits()
        self._starting = KeyLocks()
        # (workflow name, correlation id) -> the first workflow id, asked together
        self._correlated: Coalescer[tuple[str, str], str] = Coalescer(
            self._find_correlated, concurrency=4
        )

    async def execute(self, plan: Plan, ctx: Context) -> str:
        """Run one plan; return a word for metrics: started, reused, done, skipped, noop."""
        async with self._limits.hold(plan.rule, plan.rate_limit):
            return await self._execute(plan, ctx)

    async def _execute(self, plan: Plan, ctx: Context) -> str:
        if plan.method in STARTS:
            return await self._start(plan, ctx)
        if plan.target is None:
            await self._call(plan, None)
            return "done"
        found = await self._resolve(plan, ctx)
        if not found:
            return "skipped"
        ctx.workflow_ids.extend(wf.workflow_id for wf in found)
        results = [await self._act(plan, wf, ctx) for wf in found]
        return "done" if "done" in results else "noop"

    # -- starts ------------------------------------------------------------------------------

    async def _start(self, plan: Plan, ctx: Context) -> str:
        key = start_key(plan, ctx.event)
        async with self._starting.hold(key):
            return await self._start_once(plan, ctx, key)

    async def _start_once(self, plan: Plan, ctx: Context, key: str) -> str:
        # A Kafka message seen for the first time, under a key derived from its own position,
        # cannot have a record yet. Every other start looks first: a business key repeats by
        # design, and an AMQP message id repeats when a producer publishes again.
        first_sight = (
            ctx.event.source == "kafka" and not ctx.suspect and key == default_key(plan, ctx.event)
        )
        recorded, earlier = (None, None) if first_sight else await self._look_up(plan, ctx, key)
        if recorded is not None:
            ctx.workflow_ids.append(recorded)
            await self._replies.answer(plan, ctx.event, await self._replies.current(plan, recorded))
            return "reused"
        if earlier is not None:
            run, outcome = await self._replies.current(plan, earlier), "reused"
        else:
            run, outcome = await self._call_start(plan, key), "started"
        track = self._replies.track(plan, ctx.event, run)
        kept = await self._store.record_start(key, str(run.workflow_id), plan.rule, track)
        if kept != str(run.workflow_id):
            # Another process recorded this key first (the lock is per process): its workflow
            # is the one this event started; ours is a duplicate the store did not keep.
            log.warning(
                "rule '%s': key %s was recorded with workflow %s meanwhile; %s is a duplicate",
                plan.rule,
                key,
                kept,
                run.workflow_id,
            )
            run, outcome = await self._replies.current(plan, kept), "reused"
        ctx.workflow_ids.append(str(run.workflow_id))
        await self._replies.answer(plan, ctx.event, run)
        return outcome

    async def _look_up(self, plan: Plan, ctx: Context, key: str) -> tuple[str | None, str | None]:
        """(the workflow the store recorded for `key`, the one Conductor knows by the event's
        correlation id). Both are asked at once: a suspect event of a backlog misses the store
        (it was never recorded) and needs Conductor's answer next, so waiting for one before
        asking the other only adds latency. Conductor's answer counts only when the store has
        no record, and so does its failure."""
        handle = self._correlation_handle(plan, ctx, key)
        if handle is None:
            return await self._store.find_start(key), None
        asked = self._correlated.ask(handle)
        try:
            recorded = await self._store.find_start(key)
        except BaseException:
            asked.cancel()
            raise
        if recorded is not None:
            asked.cancel()  # the store's record decides; Conductor's answer or failure is moot
            return recorded, None
        return None, await asked

    async def _call_start(self, plan: Plan, key: str) -> WorkflowRun:
        params = dict(plan.params)
        # Without a rule-given correlation id the dedupe key becomes it: the one handle a
        # redelivery can use to find a start that reached Conductor but not the store.
        if not params.get("correlation_id"):
            params["correlation_id"] = key
        if plan.method == "execute_workflow":
            run: WorkflowRun = await self._client.execute_workflow(**params)
            if not run.workflow_id:
                raise DeadLetter(f"execute of '{params.get('name')}' returned no workflow id")
            return run
        if self._orkes_idempotency:
            params.update(idempotency_key=key, idempotency_strategy="RETURN_EXISTING")
        workflow_id = str(await self._client.start_workflow(**params))
        return WorkflowRun(workflow_id=workflow_id, status="RUNNING")

    @staticmethod
    def _correlation_handle(plan: Plan, ctx: Context, key: str) -> tuple[str, str] | None:
        """After a crash, the start may have reached Conductor without reaching the store.

        When the correlation id is the event's identity (the rule sets none, so the dedupe key
        is used, or sets it equal to idempotency_key), a possibly redelivered start looks for
        that workflow too: (workflow name, correlation id), or None when it cannot.
        """
        given = plan.params.get("correlation_id")
        if not ctx.suspect or (given and given != plan.idempotency_key):
            return None
        return str(plan.params["name"]), given or key

    async def _find_correlated(
        self, wanted: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        """One `POST /workflow/{name}/correlated` per workflow name for the look-ups that
        deliveries asked for together (a backlog after a restart asks for every event)."""
        by_name: dict[str, list[str]] = {}
        for name, cid in wanted:
            by_name.setdefault(name, []).append(cid)
        found: dict[tuple[str, str], str] = {}
        for name, cids in by_name.items():
            runs = await self._client.get_by_correlation_ids(name, cids, include_closed=True)
            found.update({(name, cid): ids[0] for cid, ids in runs.items() if ids})
        return found

    # -- targets -----------------------------------------------------------------------------

    async def _resolve(self, plan: Plan, ctx: Context) -> list[Found]:
        target = plan.target
        assert target is not None
        if target.workflow_id:
            return [Found(target.workflow_id, "", 0.0)]
        candidates = await self._lookup(target)
        states = STATES.get(plan.method, ActionStates(frozenset()))
        eligible = [f for f in candidates if not states.eligible or f.status in states.eligible]
        if eligible:
            return self._pick(plan, target, eligible)
        already = states.noop | (states.repeated if ctx.suspect else frozenset())
        if any(f.status in already for f in candidates):
            return []
        if target.start is not None:
            if candidates:  # e.g. ended: the key's saga is over, not to be begun again
                raise DeadLetter(
                    f"no workflow in a state to {plan.action} matched {_describe(target)}, and "
                    f"{len(candidates)} in another state did; on_missing: start starts only "
                    "when none has the correlation id"
                )
            return [Found(await self._start_missing(plan, target, ctx), "RUNNING", 0.0)]
        return self._missing(plan, target, ctx, f"no workflow matched {_describe(target)}")

    async def _start_missing(self, plan: Plan, target: Target, ctx: Context) -> str:
        """Signal-with-start: start the target's workflow under the start dedupe, keyed by its
        correlation id, so the events of one business key that race here (other partitions,
        redeliveries, other replicas) all get the one workflow the store kept."""
        assert target.start is not None
        start = replace(
            plan,
            action="start_workflow",
            method="start_workflow",
            params=dict(target.start),
            target=None,
            idempotency_key=str(target.start["correlation_id"]),
            completion=None,
            reply=None,
        )
        key = start_key(start, ctx.event)
        async with self._starting.hold(key):
            outcome = await self._start_once(start, ctx, key)
            workflow_id = await self._store.find_start(key)
        log.info("rule '%s': %s workflow %s for %s", plan.rule, outcome, workflow_id, key)
        if workflow_id is None:  # recorded just now: cannot be gone
            raise RetryLater(f"the workflow started for {key} is not in the store yet")
        return workflow_id

    async def _lookup(self, target: Target) -> list[Found]:
        if target.correlation_id:
            if not target.workflow_name:
                raise DeadLetter("target by correlation_id needs workflow_name")
            rows = await self._client.get_by_correlation_id(
                target.workflow_name, target.correlation_id, include_closed=True
            )
        else:
            result = await self._client.search(query=target.query, size=100)
            rows = result.results
        return [Found(r.workflow_id, str(r.status or ""), _epoch(r.start_time)) for r in rows]

    @staticmethod
    def _pick(plan: Plan, target: Target, found: list[Found]) -> list[Found]:
        if len(found) == 1 or target.on_many == "all":
            return found
        if target.on_many == "error":
            raise DeadLetter(f"{len(found)} workflows matched {_describe(target)}; on_many=error")
        ordered = sorted(found, key=lambda f: f.start_time)
        return [ordered[-1] if target.on_many == "newest" else ordered[0]]

    @staticmethod
    def _missing(plan: Plan, target: Target, ctx: Context, reason: str) -> list[Found]:
        if target.on_missing == "skip":
            return []
        if target.on_missing == "retry" and time.time() - ctx.first_seen < target.retry_for_seconds:
            raise RetryLater(f"{reason}; retrying (on_missing=retry)")
        if target.on_missing == "start":  # found or just started: its task is not there yet
            raise RetryLater(f"{reason}; retrying (on_missing=start)")
        raise DeadLetter(reason)

    # -- actions -----------------------------------------------------------------------------

    async def _act(self, plan: Plan, found: Found, ctx: Context) -> str:
        try:
            result = await self._call(plan, found.workflow_id)
        except ConductorError as exc:
            if isinstance(exc, TransientError) or exc.retryable:
                raise
            if plan.method in TASK_METHODS and isinstance(exc, NotFound):
                self._no_waiting_task(plan, ctx)
                return "skipped"
            if await self._already_done(plan, found.workflow_id, ctx):
                return "noop"
            raise
        if plan.method == "signal" and result is None and _names_its_task(plan):
            self._no_waiting_task(plan, ctx)
            return "skipped"
        return "done"

    def _no_waiting_task(self, plan: Plan, ctx: Context) -> None:
        target = plan.target or Target()
        self._missing(plan, target, ctx, "the workflow has no task waiting for this signal")

    async def _already_done(self, plan: Plan, workflow_id: str, ctx: Context) -> bool:
        states = STATES.get(plan.method)
        if states is None:
            return False
        try:
            status = str((await self._client.get_status(workflow_id)).status)
        except ConductorError:
            return False
        return status in states.noop or (ctx.suspect and status in states.repeated)

    async def _call(self, plan: Plan, workflow_id: str | None) -> Any:
        method = getattr(self._client, plan.method)
        if workflow_id is None:
            return await method(**plan.params)
        return await method(workflow_id, **plan.params)


def _names_its_task(plan: Plan) -> bool:
    """Whether the client reports a missing task as None (by-ref updates and lookups do; the
    bare signal endpoint answers nothing either way)."""
    params = plan.params
    return bool(params.get("task_ref")) or params.get("reason_for_incompletion") is not None


def _describe(target: Target) -> str:
    if target.correlation_id:
        return f"workflow '{target.workflow_name}' correlation id '{target.correlation_id}'"
    if target.query:
        return f"query '{target.query}'"
    return f"workflow id '{target.workflow_id}'"


def _epoch(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value:
        from datetime import datetime

        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000
        except ValueError:
            return 0.0
    return 0.0

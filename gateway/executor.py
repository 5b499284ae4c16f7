"""Execute one Plan against Conductor: find the target, make the call, treat repeats as done.

Every source delivers at least once, so every action must tolerate running twice. The treatment
per action (documented in docs/guarantees.md):

- start_workflow / execute_workflow: deduplicated by the gateway's store (key: the rule's
  idempotency key, default `<source id>#<rule>`); Orkes also gets the key with RETURN_EXISTING.
  The workflow id is recorded before the delivery is settled. Starts of one key run one at a
  time: within a process under a per-key lock, across replicas under the store's claim of the
  key (written before Conductor is called, with a lease; gateway.store.base; a message seen
  first under its own identity, the default key, needs none), so deliveries
  racing for a key (a republished AMQP message, one business key on several partitions or
  replicas) start one workflow. A claim left without its record (a crash, a failed call)
  puts the key in doubt: its next owner asks Conductor by correlation id before starting. A
  start the store still refuses (a lease that ran out mid-call) is undone: its workflow is
  terminated, naming the one recorded, and the event counts as `undone`. While the store is
  out of reach a start waits for it, unacked. With `reply:`, the run is answered
  (gateway.replies) before settling too, and answered again on a repeat.
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
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

from gateway.coalesce import Coalescer
from gateway.conductor.models import WorkflowRun
from gateway.errors import ConductorError, DeadLetter, NotFound, RetryLater, TransientError
from gateway.events import Event
from gateway.keylocks import KeyLocks
from gateway.plan import Plan, Target
from gateway.ratelimit import RateLimits
from gateway.replies import Replies
from gateway.rules.actions import ACTIONS, ActionCalls
from gateway.sinks.base import Sink
from gateway.store.base import Claim, Store, StoreUnreachable

log = logging.getLogger(__name__)

T = TypeVar("T")

START_LEASE_SECONDS = 60.0  # longer than a start call with its retries takes
CLAIM_POLL_SECONDS = 0.05  # first wait for a key another replica is starting (then doubled)
CLAIM_POLL_MAX_SECONDS = 1.0
STORE_RETRY_SECONDS = 0.2  # first wait for an unreachable store (then doubled)
STORE_RETRY_MAX_SECONDS = 5.0


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


class Conductor(ActionCalls, Protocol):
    """The part of ConductorClient the executor uses: the actions' calls, the starts and the
    look-ups of targets."""

    # The starts take their plan's params (rule options rendered per event, with the keys the
    # executor adds) as keywords from a dict, which no signature here could check; that every
    # action's params fit the client's signature is tests/rules/test_registry.py's to check.
    @property
    def start_workflow(self) -> Callable[..., Awaitable[str]]: ...
    @property
    def execute_workflow(self) -> Callable[..., Awaitable[WorkflowRun]]: ...

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


def default_replica_id() -> str:
    """`<host name>-<process id>`: unique on a host, but new with every restart."""
    return f"{socket.gethostname()}-{os.getpid()}"


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
        client: Conductor,
        store: Store,
        *,
        publisher: Sink | None = None,
        orkes_idempotency: bool = False,
        replica_id: str | None = None,
        start_lease_seconds: float = START_LEASE_SECONDS,
    ) -> None:
        self._client = client
        self._store = store
        # Claims name this process: its replica and this incarnation of it, so a restarted
        # replica knows the claims of its previous run as its own and takes them over at once.
        self._owner = f"{replica_id or default_replica_id()}#{uuid.uuid4().hex[:12]}"
        self._lease = start_lease_seconds
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
        if ACTIONS[plan.action].starts:
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
        if ctx.event.source == "kafka" and not ctx.suspect and key == default_key(plan, ctx.event):
            # A new record's own key: its position is unique and in flight once per process
            # (a revoked partition's work ends before it is fetched again), so nothing races
            # for the key here and the lock is skipped, as the claim is (see _start_once).
            return await self._start_unclaimed(plan, ctx, key)
        async with self._starting.hold(key):
            return await self._start_once(plan, ctx, key)

    async def _start_once(self, plan: Plan, ctx: Context, key: str) -> str:
        # A message seen for the first time under its own identity (the default key) is
        # started without a claim: it repeats only as a redelivery (suspect, so claimed) or,
        # on AMQP, when a producer publishes it again (looked up first; a race of the two
        # copies is undone at the record). Every other start claims its key first: a business
        # key repeats by design, across partitions, queues and replicas.
        if not ctx.suspect and key == default_key(plan, ctx.event):
            return await self._start_unclaimed(plan, ctx, key)
        handle = self._correlation_handle(plan, ctx, key)
        # A suspect event of a backlog asks Conductor while it claims: it usually misses the
        # store (it was never recorded) and needs Conductor's answer next.
        asked = self._correlated.ask(handle) if handle and ctx.suspect else None
        try:
            claim = await self._claim(key)
        except BaseException:
            if asked is not None:
                asked.cancel()
            raise
        if claim.state == "recorded":
            if asked is not None:
                asked.cancel()  # the store's record decides; Conductor's answer is moot
            assert claim.workflow_id is not None
            ctx.workflow_ids.append(claim.workflow_id)
            run = await self._replies.current(plan, claim.workflow_id)
            await self._replies.answer(plan, ctx.event, run)
            return "reused"
        try:
            run, outcome = await self._run_claimed(plan, ctx, key, claim, handle, asked)
        except Exception:
            # The start may have reached Conductor: the claim stays, expired, so the key's
            # next owner asks Conductor before it starts again.
            with contextlib.suppress(Exception):
                await self._store.release_claim(key, self._owner)
            raise
        return await self._record(plan, ctx, key, run, outcome)

    async def _start_unclaimed(self, plan: Plan, ctx: Context, key: str) -> str:
        # A Kafka record's position is unique, so it cannot have a record yet; an AMQP message
        # id can, when its producer published it twice.
        if ctx.event.source != "kafka":
            recorded = await self._durably("look-up", key, lambda: self._store.find_start(key))
            if recorded is not None:
                ctx.workflow_ids.append(recorded)
                run = await self._replies.current(plan, recorded)
                await self._replies.answer(plan, ctx.event, run)
                return "reused"
        return await self._record(plan, ctx, key, await self._call_start(plan, key), "started")

    async def _run_claimed(
        self,
        plan: Plan,
        ctx: Context,
        key: str,
        claim: Claim,
        handle: tuple[str, str] | None,
        asked: asyncio.Future[str | None] | None,
    ) -> tuple[WorkflowRun, str]:
        """The key is ours: reuse the workflow Conductor knows by correlation id when the key
        is in doubt (or the event may be a redelivery), else start it."""
        if claim.state == "in_doubt" and asked is None and handle is not None:
            asked = self._correlated.ask(handle)
        elif claim.state == "in_doubt" and handle is None:
            log.warning(
                "rule '%s': key %s is in doubt (a start without its record) and the rule's "
                "correlation_id differs from its idempotency_key, so Conductor cannot be asked; "
                "starting again",
                plan.rule,
                key,
            )
        earlier = await asked if asked is not None else None
        if earlier is not None:
            if claim.state == "in_doubt":
                log.info("rule '%s': key %s in doubt: Conductor has %s", plan.rule, key, earlier)
            return await self._replies.current(plan, earlier), "reused"
        return await self._call_start(plan, key), "started"

    async def _claim(self, key: str) -> Claim:
        """Claim `key` for this process; while another replica holds it, wait for its record
        (or for its lease to run out)."""
        delay = CLAIM_POLL_SECONDS
        while True:
            claim = await self._durably(
                "claim", key, lambda: self._store.claim_start(key, self._owner, self._lease)
            )
            if claim.state != "held":
                return claim
            await asyncio.sleep(delay)
            delay = min(delay * 2, CLAIM_POLL_MAX_SECONDS)

    async def _record(
        self, plan: Plan, ctx: Context, key: str, run: WorkflowRun, outcome: str
    ) -> str:
        """Record the start; a workflow the store refuses (another one is recorded for the
        key) is a duplicate: it is terminated, and the event gets the recorded one."""
        track = self._replies.track(plan, ctx.event, run)
        started = str(run.workflow_id)
        kept = await self._durably(
            "record", key, lambda: self._store.record_start(key, started, plan.rule, track)
        )
        if kept != started:
            await self._undo(plan, key, started, kept)
            run, outcome = await self._replies.current(plan, kept), "undone"
        ctx.workflow_ids.append(str(run.workflow_id))
        await self._replies.answer(plan, ctx.event, run)
        return outcome

    async def _undo(self, plan: Plan, key: str, duplicate: str, kept: str) -> None:
        log.warning(
            "rule '%s': key %s was recorded with workflow %s meanwhile; terminating duplicate %s",
            plan.rule,
            key,
            kept,
            duplicate,
        )
        reason = f"duplicate start of key {key}: the gateway recorded workflow {kept} for it"
        try:
            await self._client.terminate(duplicate, reason=reason)
        except ConductorError as exc:  # e.g. an execute_workflow run that ended already
            log.error("rule '%s': could not terminate duplicate %s: %s", plan.rule, duplicate, exc)

    async def _durably(self, what: str, key: str, step: Callable[[], Awaitable[T]]) -> T:
        """Run a store step of a start until the store answers: while PostgreSQL is out of
        reach the delivery waits here (unacked), so intake pauses once every slot waits."""
        delay = STORE_RETRY_SECONDS
        while True:
            try:
                return await step()
            except StoreUnreachable as exc:
                # Once per start at WARNING: an outage holds many starts, retried often.
                level = logging.WARNING if delay == STORE_RETRY_SECONDS else logging.DEBUG
                log.log(level, "%s of start key %s waits for the store: %s", what, key, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, STORE_RETRY_MAX_SECONDS)

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
        is used, or sets it equal to idempotency_key), a possibly redelivered start, or one
        whose key is in doubt, looks for that workflow too: (workflow name, correlation id), or
        None when it cannot.
        """
        given = plan.params.get("correlation_id")
        if given and given != plan.idempotency_key:
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
        states = ACTIONS[plan.action].states
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
        on_task = ACTIONS[plan.action].on_task
        try:
            result = await self._call(plan, found.workflow_id)
        except ConductorError as exc:
            if isinstance(exc, TransientError) or exc.retryable:
                raise
            if on_task and isinstance(exc, NotFound):
                self._no_waiting_task(plan, ctx)
                return "skipped"
            if await self._already_done(plan, found.workflow_id, ctx):
                return "noop"
            raise
        if on_task and result is None and _names_its_task(plan):
            self._no_waiting_task(plan, ctx)
            return "skipped"
        return "done"

    def _no_waiting_task(self, plan: Plan, ctx: Context) -> None:
        target = plan.target or Target()
        self._missing(plan, target, ctx, "the workflow has no task waiting for this signal")

    async def _already_done(self, plan: Plan, workflow_id: str, ctx: Context) -> bool:
        states = ACTIONS[plan.action].states
        try:
            status = str((await self._client.get_status(workflow_id)).status)
        except ConductorError:
            return False
        return status in states.noop or (ctx.suspect and status in states.repeated)

    async def _call(self, plan: Plan, workflow_id: str | None) -> Any:
        call = ACTIONS[plan.action].call
        assert call is not None, f"{plan.action} is a start: _start runs it"
        return await call(self._client, workflow_id, plan.params)


def _names_its_task(plan: Plan) -> bool:
    """Whether the client reports a missing task as None: by-ref updates and look-ups do; a
    signal of the first waiting task raises NotFound instead, and its None means signalled."""
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

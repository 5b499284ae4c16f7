"""Dispatch and settlement: every delivery is settled here, and only here, exactly once.

    dispatch(delivery) -> Job       route the event (cheap, synchronous, never raises): plans,
                                    or a failure (also when routing itself broke)
    run(job)                        execute the plans, then settle:
        success                  -> delivery.ack()   (Kafka: the offset may be committed)
        RetryLater               -> backoff with full jitter, in place (Kafka) or through the
                                    source's retry queue (AMQP: delivery.defer(); a retry copy
                                    the broker did not confirm: delivery.requeue()); when
                                    Conductor is down, or refuses the gateway's credentials
                                    (401, token errors), intake is paused and no attempt is
                                    spent; a 403 is one rule's missing permission: retried,
                                    then dead-lettered
        DeadLetter               -> publish to the dead-letter target (with context headers),
                                    then ack; if the publish fails, retry the publish
        no rule matched          -> the rule set's on_unmatched policy
        stopping                 -> one admitted after the stop is given back untouched
                                    (delivery.release()); a delivery backing off and one queued
                                    behind an abandoned one of its key are left unsettled
                                    (Abandoned): the broker redelivers them

Nothing is acked before its effect is durable: a start is in the store, an action was answered
by Conductor, a dead letter was confirmed by the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.backoff import capped
from gateway.conductor.auth import TOKEN_ERRORS
from gateway.deadletters import Failure, KeptBodies, error_headers, without_body
from gateway.errors import (
    Abandoned,
    ConductorError,
    DeadLetter,
    EventError,
    MessageTooLarge,
    Outcome,
    PublishError,
    RetryLater,
    TemplateError,
    TransientError,
    Unauthorized,
)
from gateway.events import Event
from gateway.executor import Context, Executor
from gateway.logs import SETTLED, settled_fields
from gateway.metrics import NO_RULE, Metrics
from gateway.plan import Destination, Plan, RetryPolicy
from gateway.rules.router import Router
from gateway.sinks.base import Sink
from gateway.sources.base import Delivery
from gateway.tracing import NO_TRACING, Tracing

log = logging.getLogger(__name__)

DEFAULT_RETRY = RetryPolicy()
# Failed dead-letter publishes of one delivery after which it counts as blocked.
BLOCKED_AFTER = 10
AUTH_HOLD_MAX_SECONDS = 60.0  # the longest intake hold after refused credentials (2, 4, ... s)


class Readiness(Protocol):
    @property
    def ready(self) -> bool: ...

    async def wait_ready(self) -> None: ...


@dataclass(slots=True)
class Job:
    delivery: Delivery
    plans: Sequence[Plan] = ()
    failure: Failure | None = None
    key: str | None = None
    unmatched: str | None = None  # the rule set's on_unmatched policy when no rule applied
    done: set[int] = field(default_factory=set)  # plans already executed (not repeated)
    retried: bool = False  # a call failed before: it may have taken effect (ambiguous)
    late: bool = False  # admitted after the gateway began stopping: never executed
    admitted: float = field(default_factory=time.monotonic)  # for gateway_event_settle_seconds
    span: Any = None  # the delivery's tracing span (None while tracing is off)
    workflow_ids: list[str] = field(default_factory=list)  # filled by the executor (Context)


PAYLOAD_LOG_BYTES = 4096  # with logging.log_payloads: enough to debug, not a log flood


@dataclass(frozen=True, slots=True)
class Policy:
    """Rule-set wide settlement choices."""

    dead_letter: Destination | None = None  # default target; None: `<topic or queue>.dlq`
    order_by_message_key: bool = True
    kept_bodies: KeptBodies | None = None  # where a body too large for the broker is kept
    log_payloads: bool = False  # settings.logging.log_payloads: bodies may hold personal data
    dead_letter_retry: RetryPolicy = DEFAULT_RETRY  # backoff of failed dead-letter publishes


class Pipeline:
    def __init__(
        self,
        *,
        router: Router,
        executor: Executor,
        publisher: Sink,
        conductor: Readiness,
        metrics: Metrics,
        policy: Policy,
        tracing: Tracing = NO_TRACING,
    ) -> None:
        self._router = router
        self._executor = executor
        self._publisher = publisher
        self._conductor = conductor
        self._metrics = metrics
        self._policy = policy
        self._tracing = tracing
        self.intake = asyncio.Event()  # set: sources may take new messages
        self.intake.set()
        self.stopping = asyncio.Event()
        self.in_flight = 0
        self._auth_failures = 0  # consecutive credential holds (the hold grows with each)
        self._auth_hold: asyncio.Task[None] | None = None  # the one hold all refused calls share
        self._abandoned_keys: set[str] = set()
        self.dead_letters_blocked = 0  # deliveries whose dead letter failed BLOCKED_AFTER times
        metrics.gauge_fn("gateway_in_flight", lambda: float(self.in_flight))
        metrics.gauge_fn("gateway_dead_letter_blocked", lambda: float(self.dead_letters_blocked))

    # -- admission ---------------------------------------------------------------------------

    def dispatch(self, delivery: Delivery) -> Job:
        """The delivery's job, never raising: one that cannot be routed (a bug in a rule
        function, say) gets a job that dead-letters it, so one bad message can neither stop its
        source nor, unsettled, hold its place (a Kafka watermark, an AMQP prefetch slot)."""
        try:
            return self.admit(delivery)
        except Exception as exc:
            log.exception("cannot route %s", delivery.event.source_id)
            reason = f"cannot route the message: {exc!r}"
            return Job(delivery, failure=Failure(reason, cause=exc))

    def admit(self, delivery: Delivery) -> Job:
        """Route the event now, so the ordering key is known before the work is scheduled."""
        event = delivery.event
        self._metrics.event_received(event.channel)
        span = self._tracing.delivery(event.channel, event.source_id, event.headers)
        with self._tracing.child("gateway.route", span):
            job = self._route(delivery)
        job.span = span
        job.late = self.stopping.is_set()
        job.key = next((p.ordering_key for p in job.plans if p.ordering_key), None)
        if job.key is None and self._policy.order_by_message_key:
            job.key = event.key  # poison messages too: a key's order holds for dead letters
        return job

    def _route(self, delivery: Delivery) -> Job:
        event = delivery.event
        if delivery.error:
            return Job(delivery, failure=Failure(delivery.error, cause=EventError(delivery.error)))
        result = self._router.route(event)
        if result.failures:
            first = result.failures[0]
            reason = f"rule '{first.rule}': {first.error}"
            return Job(delivery, failure=Failure(reason, rule=first.rule, cause=first.error))
        if result.unmatched:
            if event.body_error:
                failure = Failure(event.body_error, cause=EventError(event.body_error))
                return Job(delivery, failure=failure)
            return Job(delivery, unmatched=result.on_unmatched)
        return Job(delivery, plans=result.plans)

    # -- settlement --------------------------------------------------------------------------

    async def run(self, job: Job) -> None:
        """Process and settle one delivery; never raises except on cancellation."""
        with self._tracing.activate(job.span):
            await self._run(job)

    async def _run(self, job: Job) -> None:
        self.in_flight += 1
        try:
            await self._check_stop(job)
            outcome = await self._settle(job)
        except Abandoned:
            if job.key is not None:
                self._abandoned_keys.add(job.key)
            outcome = "abandoned"
        finally:
            self.in_flight -= 1
        self._observe(job, outcome)

    def _observe(self, job: Job, outcome: str) -> None:
        rules = [p.rule for p in job.plans] or [(job.failure and job.failure.rule) or NO_RULE]
        seconds = time.monotonic() - job.admitted
        exemplar = self._tracing.exemplar(job.span)
        self._metrics.event_settled(rules, job.delivery.event.channel, outcome, seconds, exemplar)
        self._tracing.settled(job.span, outcome)
        event_id = job.delivery.event.source_id
        self._metrics.remember(event_id, rules, job.workflow_ids, outcome, seconds)
        if outcome != "dead_letter" and log.isEnabledFor(logging.DEBUG):  # a WARNING said it
            fields = self._fields(job, rules, outcome)
            log.debug(SETTLED, fields, extra=fields)

    @staticmethod
    def _fields(job: Job, rules: Sequence[str], outcome: str) -> dict[str, Any]:
        seconds = time.monotonic() - job.admitted
        event_id = job.delivery.event.source_id
        return settled_fields(event_id, rules, job.workflow_ids, outcome, seconds)

    async def _check_stop(self, job: Job) -> None:
        """While stopping, do not run a job admitted after the stop (it is given back at once,
        not as a failed attempt) nor a job whose predecessor of the same key was abandoned
        (settling it would put it before that one, which the broker redelivers: it is left
        unsettled too). Other queued jobs finish in the grace period like the running ones."""
        if not self.stopping.is_set():
            return
        if job.late:
            await job.delivery.release()
            raise Abandoned
        if job.key is not None and job.key in self._abandoned_keys:
            raise Abandoned

    async def _settle(self, job: Job) -> str:
        """Loop until the delivery is settled; return the outcome word for metrics."""
        attempts = job.delivery.attempts
        while True:
            try:
                outcome = await self._execute(job, attempts)
            except RetryLater as retry:
                job.retried = True
                if await self._held_back(retry):
                    continue  # Conductor unreachable or refusing us: not the message's fault
                attempts += 1
                settled = await self._retry(job, retry, attempts)
                if settled is not None:
                    return settled
                continue
            except DeadLetter as dead:
                await self._dead_letter(job, _failure_of(job, dead), attempts + 1)
                return "dead_letter"
            self._auth_failures = 0
            await job.delivery.ack()
            return outcome

    async def _retry(self, job: Job, retry: RetryLater, attempts: int) -> str | None:
        """Dead-letter when out of attempts or time; else back off (None: try again here)."""
        delivery = job.delivery
        give_up = self._exhausted(job, attempts)
        if give_up:
            failure = Failure(f"{give_up}: {retry.reason}", cause=retry.cause)
            await self._dead_letter(job, failure, attempts)
            return "dead_letter"
        delay = self._retry_policy(job).delay(attempts)
        self._metrics.inc("gateway_retries_total", source=delivery.event.channel)
        log.info(
            "retry %d of %s in %.2fs: %s", attempts, delivery.event.source_id, delay, retry.reason
        )
        if delivery.defers:
            await self._defer(delivery, delay, attempts)
            return "deferred"
        await self._sleep(delay)
        return None

    @staticmethod
    async def _defer(delivery: Delivery, delay: float, attempts: int) -> None:
        """Retry through the broker; a retry copy it did not confirm puts the original back,
        as a failed attempt (a quorum queue's delivery limit ends a loop of these)."""
        try:
            await delivery.defer(delay, attempts)
        except PublishError as exc:
            log.warning(
                "retry publish of %s failed (%s); requeueing it", delivery.event.source_id, exc
            )
            await delivery.requeue()

    async def _execute(self, job: Job, attempts: int) -> str:
        """Run the job's plans; raise RetryLater or DeadLetter; return the outcome word."""
        if job.failure is not None:
            raise DeadLetter(job.failure.reason, cause=job.failure.cause)
        if job.unmatched is not None:
            return self._unmatched(job.unmatched)
        delivery = job.delivery
        suspect = delivery.suspect or attempts > 0 or job.retried
        ctx = Context(delivery.event, suspect, delivery.first_seen, job.workflow_ids)
        outcome = "done"
        for index, plan in enumerate(job.plans):
            if index in job.done:
                continue
            try:
                outcome = await self._executor.execute(plan, ctx)
            except Exception as exc:
                raise classify(exc, plan) from exc
            job.done.add(index)
        return outcome

    @staticmethod
    def _unmatched(policy: str) -> str:
        if policy == "ack":
            return "unmatched"
        raise DeadLetter(f"no rule matched this event (on_unmatched={policy})")

    def _exhausted(self, job: Job, attempts: int) -> str | None:
        policy = self._retry_policy(job)
        if attempts >= policy.max_attempts:
            return f"gave up after {attempts} attempts"
        age = time.time() - job.delivery.first_seen
        if age > policy.max_age_seconds:
            return f"gave up after {age:.0f}s (max_age_seconds={policy.max_age_seconds:g})"
        return None

    @staticmethod
    def _retry_policy(job: Job) -> RetryPolicy:
        return job.plans[0].retry if job.plans else DEFAULT_RETRY

    async def _held_back(self, retry: RetryLater) -> bool:
        """Back-pressure: while Conductor is unreachable or refuses the gateway's credentials,
        stop intake and wait, without spending the message's attempts."""
        if isinstance(retry.cause, Unauthorized):
            self._metrics.inc("gateway_auth_failures_total")
            if not refuses_credentials(retry.cause):
                return False  # 403: this rule lacks a permission; its attempts run out
            await self._refused(retry.cause)
            return True
        if not isinstance(retry.cause, TransientError) or self._conductor.ready:
            return False
        if self.intake.is_set():
            log.warning("Conductor is unreachable: pausing intake until it answers")
        self.intake.clear()
        await self._until(self._conductor.wait_ready())
        if not self.intake.is_set():
            log.info("Conductor answers again: resuming intake")
        self.intake.set()
        return True

    async def _refused(self, exc: Unauthorized) -> None:
        # Wrong or expired credentials are an operator's problem, not the messages': alert and
        # hold everything instead of dead-lettering the whole stream. Every call refused while
        # a hold is on joins it, so many failing at once close and reopen intake once, and the
        # next hold is longer only if the calls are refused again after it.
        if self._auth_hold is None or self._auth_hold.done():
            self._auth_failures += 1
            delay = capped(self._auth_failures, initial=1.0, cap=AUTH_HOLD_MAX_SECONDS)
            log.error(
                "Conductor refused the gateway's credentials (%s); intake paused, "
                "next try in %.0fs",
                exc,
                delay,
            )
            self.intake.clear()
            self._auth_hold = asyncio.create_task(self._hold_intake(delay), name="auth-hold")
        await self._until(asyncio.shield(self._auth_hold))

    async def _hold_intake(self, delay: float) -> None:
        """Keep intake closed for `delay` seconds, or until the gateway stops."""
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
        finally:
            self.intake.set()

    async def _dead_letter(self, job: Job, failure: Failure, attempts: int) -> None:
        event = job.delivery.event
        destination = self._dead_letter_target(job)
        headers = error_headers(
            event, failure, attempts=attempts, first_seen=job.delivery.first_seen
        )
        headers.update(self._tracing.headers())  # the delivery's span, when tracing is on
        await self._publish_dead_letter(destination, event, event.raw, headers)
        self._metrics.inc("gateway_dead_letters_total", destination=str(destination))
        rules = [failure.rule] if failure.rule else [p.rule for p in job.plans] or [NO_RULE]
        fields = self._fields(job, rules, "dead_letter")
        log.warning(
            "dead-lettered %s to %s after %sms (rule=%s workflow=%s): %s",
            event.source_id,
            destination,
            fields["ms"],
            fields["rule"],
            fields["workflow_id"],
            failure.reason,
            extra=fields,
        )
        if self._policy.log_payloads:
            log.info("dead-lettered %s body: %r", event.source_id, event.raw[:PAYLOAD_LOG_BYTES])
        await job.delivery.ack()

    async def _publish_dead_letter(
        self, destination: Destination, event: Event, body: bytes, headers: dict[str, str]
    ) -> None:
        """Publish until the broker confirms, with capped backoff, however long it takes.

        A dead letter is the delivery's only durable copy once acked, so it is never dropped;
        and skipping it (settling later messages of its partition or key first) would break
        their order and, on Kafka, cannot commit past it anyway. A dead letter the broker
        refuses for size goes again without its body, which is kept beside the store
        (`deadletters.without_body`): the one failure known to be permanent; for any other
        lasting refusal (authorization, a missing topic or exchange)
        the delivery counts in the `gateway_dead_letter_blocked` gauge after BLOCKED_AFTER
        failures, for alerts and health checks, until it is published or the gateway stops.
        """
        failures = 0
        try:
            while True:
                try:
                    await self._publisher.publish(
                        destination,
                        body,
                        key=event.key,
                        headers=headers,
                        correlation_id=event.correlation_id,
                    )
                    return
                except MessageTooLarge as exc:
                    kept = self._policy.kept_bodies
                    smaller = await without_body(body, headers, kept, str(exc))
                    if smaller is not None:
                        body, headers = smaller
                        continue
                    failures += 1
                    self._dead_letter_failed(event, destination, exc, failures)
                except PublishError as exc:
                    failures += 1
                    self._dead_letter_failed(event, destination, exc, failures)
                await self._sleep(self._policy.dead_letter_retry.delay(failures))
        finally:
            if failures >= BLOCKED_AFTER:
                self.dead_letters_blocked -= 1

    def _dead_letter_failed(
        self, event: Event, destination: Destination, exc: PublishError, failures: int
    ) -> None:
        if failures == BLOCKED_AFTER:
            self.dead_letters_blocked += 1
            log.error(
                "dead letter of %s to %s failed %d times in a row (%s); its partition or key "
                "is blocked until the broker takes it: check the target exists and the "
                "gateway may publish there",
                event.source_id,
                destination,
                failures,
                exc,
            )
            return
        log.error(
            "dead letter of %s to %s not confirmed (%s); retrying",
            event.source_id,
            destination,
            exc,
        )

    def _dead_letter_target(self, job: Job) -> Destination:
        for plan in job.plans:
            if plan.dead_letter is not None:
                return plan.dead_letter
        if self._policy.dead_letter is not None:
            return self._policy.dead_letter
        return fallback_dead_letter(job.delivery.event)

    async def _sleep(self, delay: float) -> None:
        await self._until(asyncio.sleep(delay))

    async def _until(self, awaitable: Any) -> None:
        """Await, but give up (Abandoned) as soon as the gateway starts stopping."""
        work = asyncio.ensure_future(awaitable)
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not work.done():
                work.cancel()
        if not work.done() or work.cancelled():
            raise Abandoned
        work.result()


def refuses_credentials(exc: Unauthorized) -> bool:
    """401, or a 403 naming a bad token: the gateway's credentials, not one rule's permission."""
    return exc.status != 403 or exc.body.get("error") in TOKEN_ERRORS


def fallback_dead_letter(event: Event) -> Destination:
    """`kafka:<topic>.dlq` or `amqp:<queue>.dlq` when no rule or default names one."""
    if event.source == "kafka":
        return Destination("kafka", f"{event.topic}.dlq")
    return Destination("amqp", "", f"{event.queue}.dlq")


def classify(exc: BaseException, plan: Plan) -> Outcome:
    """Map an error to how the delivery is settled."""
    if isinstance(exc, Outcome):
        return exc
    where = f"rule '{plan.rule}' action {plan.action}: "
    # Unauthorized: a 401 holds intake (settlement), a 403 spends the rule's attempts.
    if isinstance(exc, TransientError | Unauthorized | PublishError):
        return RetryLater(where + str(exc), cause=exc)
    if isinstance(exc, ConductorError):
        if exc.retryable:
            return RetryLater(where + str(exc), cause=exc)
        return DeadLetter(where + str(exc), cause=exc)
    if isinstance(exc, TemplateError | EventError):
        return DeadLetter(where + str(exc), cause=exc)
    log.exception("unexpected error in %s", where.rstrip(": "))
    return RetryLater(where + f"unexpected {type(exc).__name__}: {exc}", cause=exc)


def _failure_of(job: Job, dead: DeadLetter) -> Failure:
    if job.failure is not None:
        return job.failure
    cause = dead.cause if dead.cause is not None else dead
    plan = _failing_plan(job)
    return Failure(dead.reason, plan.rule if plan else None, plan.action if plan else None, cause)


def _failing_plan(job: Job) -> Plan | None:
    for index, plan in enumerate(job.plans):
        if index not in job.done:
            return plan
    return job.plans[-1] if job.plans else None

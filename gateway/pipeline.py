"""Dispatch and settlement: every delivery is settled here, and only here, exactly once.

    admit(delivery) -> Job          route the event (cheap, synchronous): plans or a failure
    run(job)                        execute the plans, then settle:
        success                  -> delivery.ack()   (Kafka: the offset may be committed)
        RetryLater               -> backoff with full jitter, in place (Kafka) or through the
                                    source's retry queue (AMQP); when Conductor is down intake is
                                    paused and no attempt is spent
        DeadLetter               -> publish to the dead-letter target (with context headers),
                                    then ack; if the publish fails, retry the publish
        no rule matched          -> the rule set's on_unmatched policy

Nothing is acked before its effect is durable: a start is in the store, an action was answered
by Conductor, a dead letter was confirmed by the broker.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.deadletters import Failure, error_headers
from gateway.errors import (
    ConductorError,
    DeadLetter,
    EventError,
    Outcome,
    PublishError,
    RetryLater,
    TemplateError,
    TransientError,
    Unauthorized,
)
from gateway.events import Event
from gateway.executor import Context, Executor
from gateway.metrics import Metrics
from gateway.plan import Destination, Plan, RetryPolicy
from gateway.rules.router import Router
from gateway.sinks.base import Sink
from gateway.sources.base import Delivery

log = logging.getLogger(__name__)

DEFAULT_RETRY = RetryPolicy()


class Readiness(Protocol):
    @property
    def ready(self) -> bool: ...

    async def wait_ready(self) -> None: ...


class Abandoned(Exception):
    """The gateway is stopping: leave the delivery unsettled so the broker redelivers it."""


@dataclass(slots=True)
class Job:
    delivery: Delivery
    plans: Sequence[Plan] = ()
    failure: Failure | None = None
    key: str | None = None
    unmatched: str | None = None  # the rule set's on_unmatched policy when no rule applied
    done: set[int] = field(default_factory=set)  # plans already executed (not repeated)
    retried: bool = False  # a call failed before: it may have taken effect (ambiguous)


@dataclass(frozen=True, slots=True)
class Policy:
    """Rule-set wide settlement choices."""

    dead_letter: Destination | None = None  # default target; None: `<topic or queue>.dlq`
    order_by_message_key: bool = True


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
    ) -> None:
        self._router = router
        self._executor = executor
        self._publisher = publisher
        self._conductor = conductor
        self._metrics = metrics
        self._policy = policy
        self.intake = asyncio.Event()  # set: sources may take new messages
        self.intake.set()
        self.stopping = asyncio.Event()
        self.in_flight = 0
        self._auth_failures = 0
        metrics.gauge_fn("gateway_in_flight", lambda: float(self.in_flight))

    # -- admission ---------------------------------------------------------------------------

    def admit(self, delivery: Delivery) -> Job:
        """Route the event now, so the ordering key is known before the work is scheduled."""
        event = delivery.event
        self._metrics.inc("gateway_events_received_total", source=event.channel)
        job = self._route(delivery)
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
        self.in_flight += 1
        try:
            outcome = await self._settle(job)
            self._metrics.inc("gateway_events_settled_total", outcome=outcome)
        except Abandoned:
            self._metrics.inc("gateway_events_settled_total", outcome="abandoned")
        finally:
            self.in_flight -= 1

    async def _settle(self, job: Job) -> str:
        """Loop until the delivery is settled; return the outcome word for metrics."""
        attempts = job.delivery.attempts
        while True:
            try:
                outcome = await self._dispatch(job, attempts)
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
        delay = random.uniform(0, self._retry_policy(job).backoff(attempts))
        self._metrics.inc("gateway_retries_total", source=delivery.event.channel)
        log.info(
            "retry %d of %s in %.2fs: %s", attempts, delivery.event.source_id, delay, retry.reason
        )
        if delivery.defers:
            await delivery.defer(delay, attempts)
            return "deferred"
        await self._sleep(delay)
        return None

    async def _dispatch(self, job: Job, attempts: int) -> str:
        """Run the job's plans; raise RetryLater or DeadLetter; return the outcome word."""
        if job.failure is not None:
            raise DeadLetter(job.failure.reason, cause=job.failure.cause)
        if job.unmatched is not None:
            return self._unmatched(job.unmatched)
        delivery = job.delivery
        suspect = delivery.suspect or attempts > 0 or job.retried
        ctx = Context(delivery.event, suspect, delivery.first_seen)
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
        # hold everything instead of dead-lettering the whole stream.
        self._auth_failures += 1
        delay = min(60.0, 2.0 ** min(self._auth_failures, 6))
        log.error(
            "Conductor refused the gateway's credentials (%s); intake paused, next try in %.0fs",
            exc,
            delay,
        )
        self._metrics.inc("gateway_auth_failures_total")
        self.intake.clear()
        try:
            await self._sleep(delay)
        finally:
            self.intake.set()

    async def _dead_letter(self, job: Job, failure: Failure, attempts: int) -> None:
        event = job.delivery.event
        destination = self._dead_letter_target(job)
        headers = error_headers(
            event, failure, attempts=attempts, first_seen=job.delivery.first_seen
        )
        retries = 0
        while True:
            try:
                await self._publisher.publish(
                    destination,
                    event.raw,
                    key=event.key,
                    headers=headers,
                    correlation_id=event.correlation_id,
                )
                break
            except PublishError as exc:
                retries += 1
                log.error(
                    "dead letter of %s to %s not confirmed (%s); retrying",
                    event.source_id,
                    destination,
                    exc,
                )
                await self._sleep(random.uniform(0, DEFAULT_RETRY.backoff(retries)))
        self._metrics.inc("gateway_dead_letters_total", destination=str(destination))
        log.warning("dead-lettered %s to %s: %s", event.source_id, destination, failure.reason)
        await job.delivery.ack()

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
    if isinstance(exc, TransientError | Unauthorized | PublishError):  # Unauthorized: held back
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

"""The daemon: store, Conductor client, publisher, tracker, sources and admin, composed.

    async with Gateway(settings) as gateway:   # opens everything, in dependency order
        await gateway.serve()                  # until request_stop() (SIGTERM/SIGINT)

Shutdown order (uvicorn's): stop intake, let the Kafka poll loop end (it admits nothing more),
finish in-flight work within `shutdown_grace_seconds` (Kafka commits what finished), cancel the
rest (it is redelivered), then close sources, tracker, publisher, client and store. Nothing is
acked without its effect. A source that fails by itself (the Kafka consumer stopped) ends
`serve()` with SourceUnavailable, so `gateway run` exits non-zero and a supervisor restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Any, TypeVar

from gateway.admin import Admin
from gateway.conductor.client import ConductorClient
from gateway.conductor.startup import probe_capabilities
from gateway.conductor.startup import unavailable_cause as conductor_cause
from gateway.deadletters import KeptBodies
from gateway.executor import Executor
from gateway.metrics import Metrics
from gateway.pipeline import Pipeline, Policy
from gateway.readiness import Readiness, keep_trying
from gateway.relay import Relay
from gateway.rules.loader import load_rules
from gateway.rules.router import Router
from gateway.rules.ruleset import RuleSet
from gateway.settings import KafkaSettings, Settings
from gateway.sinks import Publisher
from gateway.sources.amqp import AmqpSource, QueueSpec
from gateway.sources.base import SourceUnavailable
from gateway.sources.kafka import KafkaSource
from gateway.store.base import Store
from gateway.store.factory import OPEN_ERRORS, StoreUnavailable, build_store
from gateway.store.factory import unavailable_cause as store_cause
from gateway.tracing import Tracing
from gateway.tracker import Tracker

log = logging.getLogger(__name__)

T = TypeVar("T")

READINESS_CHECK_SECONDS = 1.0
TRACKER_METRICS = {
    "gateway_tracker_polls_total": "polls",
    "gateway_completions_published_total": "published",
    "gateway_completions_expired_total": "expired",
    "gateway_completions_abandoned_total": "abandoned",
}


class Gateway:
    def __init__(
        self, settings: Settings, *, ruleset: RuleSet | None = None, tracing: Tracing | None = None
    ) -> None:
        self.settings = settings
        self.ruleset = ruleset if ruleset is not None else load_rules(settings.rules_file)
        self.metrics = Metrics()
        self.tracing = tracing if tracing is not None else Tracing.from_env()
        self._stack = contextlib.AsyncExitStack()
        self._stop = asyncio.Event()
        self.kafka: KafkaSource | None = None
        self.amqp: AmqpSource | None = None
        self.client: ConductorClient | None = None
        self.pipeline: Pipeline | None = None
        self.store: Store | None = None
        self.admin: Admin | None = None
        self.readiness = Readiness()
        self.started = False  # __aenter__ finished: a stop request now drains (serve)

    async def __aenter__(self) -> Gateway:
        try:
            await self._open()
        except BaseException:
            await self._stack.aclose()
            raise
        self.started = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _open(self) -> None:
        """Admin first (probes answer from the first second), then each dependency, retried
        until it answers (see gateway/readiness.py); cancellation closes what was opened."""
        s, stack = self.settings, self._stack
        if s.admin.port:
            self.admin = await stack.enter_async_context(Admin(self, s.admin.host, s.admin.port))
        watcher = asyncio.create_task(self._watch_readiness(), name="readiness")
        stack.callback(watcher.cancel)
        store: Store = await keep_trying(self.readiness, "store", "not open", self._open_store)
        self.store = store
        client = await stack.enter_async_context(ConductorClient.from_settings(s.conductor))
        self.client = client
        caps = await keep_trying(
            self.readiness,
            "conductor",
            "not reachable",
            functools.partial(probe_capabilities, client, s.conductor),
        )
        log.info("Conductor flavor: %s", caps.flavor)
        publisher = await stack.enter_async_context(Publisher(s))
        timed = self.metrics.timed(client)  # gateway_conductor_request_seconds
        executor = Executor(
            self.tracing.traced(timed, "conductor"),
            self.tracing.traced(store, "store"),
            publisher=publisher,
            orkes_idempotency=caps.idempotency,
            replica_id=s.replica_id,
            start_lease_seconds=s.store.claim_seconds,
        )
        self.pipeline = Pipeline(
            router=Router(self.ruleset),
            executor=executor,
            publisher=publisher,
            conductor=client,
            metrics=self.metrics,
            tracing=self.tracing,
            policy=Policy(
                dead_letter=self.ruleset.default_dead_letter,
                kept_bodies=KeptBodies.beside(s.store),
                log_payloads=s.logging.log_payloads,
            ),
        )
        self.metrics.gauge_fn("gateway_conductor_ready", lambda: float(client.ready))
        tracker = Tracker(store, timed, publisher, s.tracker, mode=s.tracker.content_mode)
        tracker.on_published = self.metrics.completion_published
        tracker.tracing = self.tracing
        self._expose(tracker)
        await stack.enter_async_context(tracker)
        if s.relay.topic:  # Conductor's own status events, republished as CloudEvents
            await stack.enter_async_context(
                Relay(s.relay, s.kafka, publisher, mode=s.tracker.content_mode, store=store)
            )
        await self._open_sources()

    async def _open_store(self) -> Store:
        try:
            return await self._stack.enter_async_context(build_store(self.settings))
        except OPEN_ERRORS as exc:
            raise StoreUnavailable(store_cause(exc, self.settings)) from None

    async def _watch_readiness(self) -> None:
        """Keep the readiness causes of opened components current (and logged)."""
        while True:
            self._check_readiness()
            await asyncio.sleep(READINESS_CHECK_SECONDS)

    def _check_readiness(self) -> None:
        r, client = self.readiness, self.client
        if client is not None and "conductor" not in r.opening:
            cause = conductor_cause(client.last_error, self.settings.conductor)
            if client.ready:
                r.clear("conductor")
            elif client.last_error is None:
                r.note("conductor", cause)  # its first answer is on the way: nothing failed
            else:
                r.fail("conductor", cause)
        self._check_store()
        if self.kafka is not None:
            if self.kafka.awaiting_assignment:
                r.note("kafka", "waiting for partition assignment")
            elif not self.kafka.connected:
                r.note("kafka", "no fetch answered lately (brokers unreachable?)")
            else:
                r.clear("kafka")
        if self.amqp is not None:
            if self.amqp.connected:
                r.clear("amqp")
            else:
                r.note("amqp", "connection lost; reconnecting")

    def _check_store(self) -> None:
        """The shared store's reachability, as its health check last saw it (PostgreSQL)."""
        r = self.readiness
        if self.store is None or "store" in r.opening:
            return
        problem = getattr(self.store, "problem", None)
        if problem:
            r.fail("store", problem)
        else:
            r.clear("store")

    def _expose(self, tracker: Tracker) -> None:
        for name, attribute in TRACKER_METRICS.items():
            self.metrics.gauge_fn(name, functools.partial(_read_count, tracker, attribute))

    async def _open_sources(self) -> None:
        s, rs = self.settings, self.ruleset
        assert self.pipeline is not None
        topics, pattern = sorted(rs.kafka_topics()), rs.kafka_pattern()
        if topics or pattern:
            kafka = functools.partial(
                KafkaSource,
                kafka_settings(s),
                topics,
                self.pipeline,
                limits=s.limits,
                metrics=self.metrics,
                pattern=pattern,
                marks=self.store,
            )
            self.kafka = await keep_trying(
                # aiokafka's start() returns once the group has assigned the partitions
                self.readiness,
                "kafka",
                "waiting for partition assignment",
                lambda: self._enter(kafka()),
            )
        queues = [QueueSpec(name, pairs) for name, pairs in rs.amqp_queue_bindings().items()]
        if queues:
            amqp = functools.partial(
                AmqpSource,
                s.amqp,
                queues,
                self.pipeline,
                limits=s.limits,
                metrics=self.metrics,
                declare=rs.amqp_declared_queues(),
            )
            self.amqp = await keep_trying(
                self.readiness, "amqp", "not connected", lambda: self._enter(amqp())
            )

    async def _enter(self, resource: contextlib.AbstractAsyncContextManager[T]) -> T:
        return await self._stack.enter_async_context(resource)

    # -- running -----------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    @property
    def sources(self) -> list[KafkaSource | AmqpSource]:
        return [src for src in (self.kafka, self.amqp) if src is not None]

    def reasons(self) -> list[str]:
        """Why the gateway is not ready (empty: ready), each `<component>: <cause>`."""
        if not self.started and not self.readiness.reasons():
            return ["gateway: starting"]
        self._check_readiness()
        return self.readiness.reasons()

    @property
    def ready(self) -> bool:
        return not self.reasons()

    async def serve(self) -> None:
        """Consume until `request_stop()`, then drain within the grace period."""
        runs = [asyncio.create_task(src.run(), name=type(src).__name__) for src in self.sources]
        stop = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait([*runs, stop], return_when=asyncio.FIRST_COMPLETED)
        failed = [t for t in done if t is not stop and _failure(t) is not None]
        for task in failed:
            log.error("source %s failed: %r", task.get_name(), _failure(task))
        await self._shutdown(runs)
        stop.cancel()
        if failed:
            raise SourceUnavailable(f"source {failed[0].get_name()} failed: {_failure(failed[0])}")

    async def _shutdown(self, runs: list[asyncio.Task[None]]) -> None:
        assert self.pipeline is not None
        grace = self.settings.shutdown_grace_seconds
        log.info("stopping: no new messages; finishing in-flight work (up to %gs)", grace)
        if self.kafka is not None:
            self.kafka.stop_intake()
        if self.amqp is not None:
            await self.amqp.stop_intake()
        # Deliveries waiting out a backoff or a Conductor outage are left for redelivery.
        self.pipeline.stopping.set()
        # The poll loop may be inside getmany (or a commit): once it has returned it admits
        # nothing more, so the drain below sees all the work there will be.
        polls = [t for t in runs if t.get_name() == KafkaSource.__name__ and not t.done()]
        if polls:
            await asyncio.wait(polls, timeout=grace)
        await asyncio.gather(*(src.drain(grace) for src in self.sources))
        for task in runs:
            if not task.done():
                task.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
        log.info("stopped: in-flight work settled, offsets committed")


def kafka_settings(settings: Settings) -> KafkaSettings:
    """The consumer's settings: a replica with a `replica_id` is a static member of its group
    under that name, unless kafka.group_instance_id names it otherwise."""
    kafka = settings.kafka
    if kafka.group_instance_id or not settings.replica_id:
        return kafka
    return kafka.model_copy(update={"group_instance_id": settings.replica_id})


def _failure(task: asyncio.Task[Any]) -> BaseException | None:
    if task.cancelled():
        return asyncio.CancelledError(f"source {task.get_name()} was cancelled")
    return task.exception()


def _read_count(tracker: Tracker, attribute: str) -> float:
    return float(getattr(tracker, attribute))

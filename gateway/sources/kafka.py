"""Kafka source (aiokafka): a consumer group member that commits only finished work.

- `enable_auto_commit=False`. Each partition keeps a window of the offsets it handed out; an
  offset leaves the window when its delivery is settled, and the committed offset is the first
  one still unsettled (a contiguous watermark), so a crash never skips unfinished work.
- Messages of one key (the plan's ordering key, else the message key) run one after another;
  different keys run concurrently. A partition whose window is full is left out of the next
  fetch, not paused: aiokafka drops a paused partition's prefetched records, and fetching them
  again after each resume held a backlog to a third of the rate (issue 18). Every partition is
  paused while the pipeline has closed intake (Conductor down) or the gateway is stopping, and
  when every window stayed full for `KEEP_POLLING_SECONDS` (a poll keeps the member alive).
- The isolation level is read_committed: an aborted transaction's records are never events.
  Offsets that hold no event (transaction markers) are passed: a partition with nothing in
  flight commits the consumer's position, so a caught-up partition shows no lag. Lag is
  counted to the last stable offset: records behind an open transaction are not readable yet.
- Records are new or suspect by the partition's mark in the store (gateway.store.base): the
  mark is raised past a fetched batch, durably, before any of its records is acted on, in steps
  of `MARK_AHEAD` fetches so a write is rare. A new owner takes the records below the stored
  mark as suspect (maybe processed by a crashed owner: claimed and asked of Conductor) and the
  rest, a backlog included, as new. Without a known mark, everything below the high-water mark
  at the first fetch is suspect.
- On revoke, the listener stops intake for those partitions, drains their work within
  `revoke_drain_seconds`, and commits. It takes no lock that the poll loop holds (aiokafka's
  listener deadlock): the poll loop is simply suspended inside `getmany` while it runs.
- A watchdog reports a partition that has lag but commits no progress, and a member that has
  been without an assignment (no completed rebalance) for `UNASSIGNED_SECONDS` (log + metric +
  /healthz 503): aiokafka can stay stuck after a broker restart without raising (A23, A24).
- `connected` is true while fetches succeed: a partition being fetched was answered by its
  leader within `FETCH_STALE_SECONDS`.
- Every call that talks to the group coordinator (commit, stop) has a deadline: aiokafka retries
  them for as long as the coordinator is unreachable, which would hang a shutdown.
- A message that cannot even be turned into an event or routed is dead-lettered, not raised
  (`read_event`, `Pipeline.dispatch`): an exception here would stop the consumer and, after a
  restart, stop it again on the same offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import ConsumerStoppedError, KafkaError

from gateway.backoff import capped
from gateway.events import Event, header_text
from gateway.metrics import Metrics
from gateway.pipeline import Pipeline
from gateway.settings import KafkaSettings, LimitSettings
from gateway.sources.base import SourceUnavailable, read_body, read_event
from gateway.sources.kafka_config import consumer_options, security_problem
from gateway.sources.offsets import Marks, PartitionWindow
from gateway.store.base import StoreUnreachable

log = logging.getLogger(__name__)

COMMIT_INTERVAL = 1.0  # seconds between commits of advanced watermarks
STALL_SECONDS = 60.0  # lag without progress for this long is reported
UNASSIGNED_SECONDS = 60.0  # subscribed without a completed rebalance for this long: reported
FETCH_STALE_SECONDS = 30.0  # no fetch answered for this long: not connected
KEEP_POLLING_SECONDS = 10.0  # longest time without a poll while every window is full
POSITION_SECONDS = 0.5  # longest wait for a partition's position (known unless being reset)
MARK_AHEAD = 10  # a partition's mark is raised this many full fetches past what was fetched
MARK_RETRY_SECONDS = 0.2  # first wait for a store that cannot raise a mark (then doubled)
MARK_RETRY_MAX_SECONDS = 5.0


class KafkaDelivery:
    """One Kafka record; ack marks its offset finished (the commit follows in the loop)."""

    defers = False
    attempts = 0

    def __init__(
        self,
        window: PartitionWindow,
        event: Event,
        error: str | None,
        suspect: bool,
        room: asyncio.Event,
    ) -> None:
        self._window = window
        self._room = room
        self.event = event
        self.error = error
        self.suspect = suspect
        self.first_seen = time.time()

    async def ack(self) -> None:
        assert self.event.offset is not None
        self._window.finish(self.event.offset)
        self._room.set()  # wake the poll loop: a full partition may have room again

    async def defer(self, delay: float, attempts: int) -> None:  # pragma: no cover
        raise NotImplementedError("Kafka deliveries are retried in place")

    async def requeue(self) -> None:  # pragma: no cover
        raise NotImplementedError("Kafka deliveries are retried in place")

    async def release(self) -> None:
        """Nothing to give back: the offset stays unsettled, so it is never committed."""


class KafkaSource:
    """`async with KafkaSource(...) as source: await source.run()`; `stop_intake()` ends `run`,
    `drain()` finishes the work in flight and commits."""

    def __init__(
        self,
        settings: KafkaSettings,
        topics: list[str],
        pipeline: Pipeline,
        *,
        limits: LimitSettings,
        metrics: Metrics,
        pattern: str | None = None,
        marks: Marks | None = None,
    ) -> None:
        self._settings = settings
        self._marks = marks  # None: no store to keep them, every backlog is suspect
        self._topics = sorted(set(topics))
        self._pattern = pattern
        self._pipeline = pipeline
        self._limits = limits
        self._metrics = metrics
        self._windows: dict[TopicPartition, PartitionWindow] = {}
        self._paused: set[TopicPartition] = set()
        self._stopping = asyncio.Event()
        self._room = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self.connected = False
        self.stalled = False
        self._unassigned_since: float | None = time.monotonic()  # None: a rebalance completed
        self._last_fetch = time.monotonic()
        self._last_getmany = time.monotonic()

    async def __aenter__(self) -> KafkaSource:
        self._consumer = AIOKafkaConsumer(**consumer_options(self._settings))
        if self._pattern:
            self._consumer.subscribe(pattern=self._pattern, listener=_Listener(self))
        else:
            self._consumer.subscribe(self._topics, listener=_Listener(self))
        try:
            await self._consumer.start()
        except (KafkaError, OSError) as exc:
            await self._stop_consumer()
            cause = await security_problem(self._settings) or unavailable_cause(exc, self._settings)
            raise SourceUnavailable(cause) from None
        except BaseException:  # cancelled (SIGTERM during start-up): leave the group
            await self._stop_consumer()
            raise
        self.connected = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._consumer is not None:
            await self._stop_consumer()
        self.connected = False

    async def _stop_consumer(self) -> None:
        # stop() leaves the group through the coordinator and retries while it is unreachable;
        # it may also run the revoke listener (drain, then commit: one deadline each).
        deadline = 2 * self._settings.revoke_drain_seconds
        try:
            await asyncio.wait_for(self.consumer.stop(), deadline)
            return
        except (TimeoutError, KafkaError) as exc:
            reason = type(exc).__name__
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # we are being cancelled: not aiokafka's own failure
            # aiokafka's fetcher re-raises the cancellation of its own fetch tasks when it is
            # closed while a broker is unreachable.
            reason = "fetcher cancelled"
        log.warning(
            "Kafka consumer did not stop cleanly within %gs (%s); closing its connections",
            deadline,
            reason,
        )
        client = getattr(self.consumer, "_client", None)  # what stop() would close last
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), 2.0)

    @property
    def consumer(self) -> AIOKafkaConsumer:
        assert self._consumer is not None, "use `async with KafkaSource(...)`"
        return self._consumer

    # -- the poll loop -----------------------------------------------------------------------

    async def run(self) -> None:
        """Poll, dispatch and commit until `stop_intake()`."""
        watchdog = asyncio.create_task(self._watch())
        last_commit = time.monotonic()
        try:
            while not self._stopping.is_set():
                await self._poll_once()
                if time.monotonic() - last_commit >= COMMIT_INTERVAL:
                    await self._commit(list(self._windows.values()))
                    last_commit = time.monotonic()
        finally:
            watchdog.cancel()

    async def _poll_once(self) -> None:
        fetchable = self._fetchable()
        if not fetchable:
            # Intake closed, or every window full: wait for a settlement rather than fetch
            # (heartbeats run in the background meanwhile).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), 0.2)
            self._room.clear()
            fetchable = self._fetchable()
            if not fetchable and not self._must_poll():
                return
        self._apply_pauses(paused=not fetchable)
        try:
            # Only partitions with room: a full one is left out, not paused (pausing drops
            # aiokafka's prefetched records, to be fetched again after the resume).
            batch = await self.consumer.getmany(
                *fetchable,
                timeout_ms=200 if len(fetchable) == len(self.consumer.assignment()) else 10,
                max_records=self._settings.max_in_flight_per_partition,
            )
            self._last_getmany = time.monotonic()
        except ConsumerStoppedError:
            if self._stopping.is_set():
                return
            raise SourceUnavailable(
                "the Kafka consumer stopped by itself; exiting so that a supervisor restarts "
                "the gateway"
            ) from None
        except KafkaError as exc:
            self.connected = False
            log.error("Kafka poll failed (%s); retrying in 1s", type(exc).__name__)
            await asyncio.sleep(1.0)
            return
        self._note_fetches()
        if self._stopping.is_set() or not await self._raise_marks(batch):
            return  # fetched after stop: not admitted, so redelivered from the last commit
        for tp, records in batch.items():
            window = self._windows.get(tp)
            if window is None or window.revoked:
                continue  # not ours any more; the new owner reads it from the commit
            for record in records:
                self._admit(window, record)
        await self._pass_gaps()

    async def _raise_marks(self, batch: dict[TopicPartition, list[Any]]) -> bool:
        """Raise each partition's mark past its fetched records before any is acted on; False
        when the gateway began stopping while the store could not take the marks."""
        if self._marks is None:
            return True
        ahead = MARK_AHEAD * self._settings.max_in_flight_per_partition
        wanted = {
            tp: records[-1].offset + 1 + ahead
            for tp, records in batch.items()
            if records
            and (window := self._windows.get(tp)) is not None
            and records[-1].offset >= window.marked
        }
        marks, attempt = self._marks, 0
        while wanted:
            try:
                await asyncio.gather(
                    *(marks.reach(tp.topic, tp.partition, m) for tp, m in wanted.items())
                )
            except StoreUnreachable as exc:
                level = logging.WARNING if attempt == 0 else logging.DEBUG
                log.log(level, "partition marks wait for the store (%s); intake waits", exc)
                await asyncio.sleep(
                    capped(attempt, initial=MARK_RETRY_SECONDS, cap=MARK_RETRY_MAX_SECONDS)
                )
                attempt += 1
                if self._stopping.is_set():
                    return False
                continue
            for tp, mark in wanted.items():
                if (window := self._windows.get(tp)) is not None:
                    window.marked = max(window.marked, mark)
            break
        return True

    async def _pass_gaps(self) -> None:
        """Move idle windows up to the consumer's position. A fetch can pass offsets that hold
        no event (transaction markers, aborted transactions' records): without this the commit
        stops short of them and the partition shows lag, then a stall, forever."""
        for tp, window in list(self._windows.items()):
            if window.pending or window.revoked:
                continue
            end = self._readable_end(tp)
            mark = window.next_offset if window.next_offset is not None else window.committed
            if end is None or (mark is not None and mark >= end):
                continue
            try:
                async with asyncio.timeout(POSITION_SECONDS):  # waits only while being reset
                    position = await self.consumer.position(tp)
            except (TimeoutError, KafkaError):
                continue
            window.skip_to(position)

    def _readable_end(self, tp: TopicPartition) -> int | None:
        """Where the readable records of `tp` end: the last stable offset (records behind an
        open transaction cannot be read yet), else the high-water mark."""
        stable: int | None = self.consumer.last_stable_offset(tp)
        return stable if stable is not None else self.consumer.highwater(tp)

    def _note_fetches(self) -> None:
        """`connected`: some partition being fetched was answered lately (aiokafka's getmany
        returns nothing, without an error, while the leader is unreachable)."""
        now = time.monotonic()
        active = self.consumer.assignment() - self._paused
        if not active or any(
            self._fetched_since(tp, time.time() - FETCH_STALE_SECONDS) for tp in active
        ):
            self._last_fetch = now  # nothing to fetch is not a failure to fetch
        self.connected = now - self._last_fetch < FETCH_STALE_SECONDS and not self.unassigned

    def _fetched_since(self, tp: TopicPartition, since: float) -> bool:
        stamp = self.consumer.last_poll_timestamp(tp)  # ms, wall clock, per answered fetch
        return stamp is not None and stamp / 1000 >= since

    @property
    def awaiting_assignment(self) -> bool:
        """Subscribed, and no rebalance completed yet (or one is under way)."""
        return self._unassigned_since is not None

    @property
    def unassigned(self) -> bool:
        """Subscribed, but no rebalance completed for `UNASSIGNED_SECONDS`."""
        since = self._unassigned_since
        return since is not None and time.monotonic() - since > UNASSIGNED_SECONDS

    def _admit(self, window: PartitionWindow, record: Any) -> None:
        window.add(record.offset)
        if window.suspect_below is None:
            # No mark known: anything that existed when we took the partition over may have
            # been processed by the previous owner without a commit (a crash, a lost revoke).
            window.suspect_below = self.consumer.highwater(window.tp) or 0
        suspect = record.offset < window.suspect_below
        event, error = read_event(
            lambda: to_event(record, self._limits, self._settings),
            lambda: bare_event(record),
            f"{record.topic}/{record.partition}@{record.offset}",
        )
        delivery = KafkaDelivery(window, event, error, suspect, self._room)
        job = self._pipeline.dispatch(delivery)
        window.ordered.spawn(job.key, lambda: self._pipeline.run(job))

    def _fetchable(self) -> list[TopicPartition]:
        """The assigned partitions with room in their window, while intake is open."""
        if not self._pipeline.intake.is_set() or self._stopping.is_set():
            return []
        limit = self._settings.max_in_flight_per_partition
        return [
            tp
            for tp in self.consumer.assignment()
            if (window := self._windows.get(tp)) is not None
            and not window.revoked
            and len(window.pending) < limit
        ]

    def _must_poll(self) -> bool:
        """Nothing to fetch, but a poll is due: every partition is paused for it to return
        nothing, and aiokafka counts the member alive (`max_poll_interval_ms`)."""
        closed = not self._pipeline.intake.is_set() or self._stopping.is_set()
        return closed or time.monotonic() - self._last_getmany > KEEP_POLLING_SECONDS

    def _apply_pauses(self, *, paused: bool) -> None:
        """Pause every assigned partition (`paused`) or none."""
        assigned = self.consumer.assignment()
        want = set(assigned) if paused else set()
        if want - self._paused:
            self.consumer.pause(*(want - self._paused))
        if (self._paused - want) & assigned:
            self.consumer.resume(*((self._paused - want) & assigned))
        self._paused = want

    async def _commit(self, windows: list[PartitionWindow]) -> None:
        offsets = {w.tp: off for w in windows if (off := w.to_commit()) is not None}
        if not offsets:
            return
        try:
            # aiokafka retries a commit for as long as the coordinator is unreachable
            await asyncio.wait_for(
                self.consumer.commit(offsets), self._settings.revoke_drain_seconds
            )
        except (KafkaError, TimeoutError) as exc:
            log.warning(
                "commit of %d partitions failed (%s); the next commit retries",
                len(offsets),
                type(exc).__name__,
            )
            return
        for window in windows:
            if window.tp in offsets:
                window.committed = offsets[window.tp]

    # -- shutdown ----------------------------------------------------------------------------

    def stop_intake(self) -> None:
        """Stop taking new messages; the poll loop ends at its next turn."""
        self._stopping.set()

    async def drain(self, timeout: float) -> None:
        """Finish in-flight work within `timeout`, then commit what finished."""
        await self._finish(
            list(self._windows.values()),
            timeout,
            "%s: %d deliveries unfinished at shutdown; they will be redelivered",
        )

    async def _finish(self, windows: list[PartitionWindow], timeout: float, cut_log: str) -> None:
        """Drain the windows' work within `timeout` (what is left is cancelled and logged with
        `cut_log`, which takes the partition and the count), then commit what finished."""
        deadline = time.monotonic() + timeout
        for window in windows:
            cut = await window.ordered.drain(max(0.0, deadline - time.monotonic()))
            if cut:
                log.warning(cut_log, window.tp, cut)
        await self._commit(windows)

    # -- rebalance ---------------------------------------------------------------------------

    async def on_revoked(self, revoked: list[TopicPartition]) -> None:
        self._unassigned_since = time.monotonic()  # a rebalance began
        windows = [w for tp in revoked if (w := self._windows.pop(tp, None)) is not None]
        for tp in revoked:
            self._metrics.remove(
                "gateway_consumer_lag", topic=tp.topic, partition=str(tp.partition)
            )
        for window in windows:
            window.revoked = True
        self._paused -= set(revoked)
        await self._finish(
            windows,
            self._settings.revoke_drain_seconds,
            "%s revoked with %d deliveries unfinished; the new owner redoes them",
        )

    async def on_assigned(self, assigned: list[TopicPartition]) -> None:
        self._unassigned_since = None  # a rebalance completed (an empty assignment is fine)
        new = [tp for tp in assigned if tp not in self._windows]
        marks = await self._read_marks(new)
        for tp in new:
            window = self._windows[tp] = PartitionWindow(tp)
            mark = marks.get(tp)
            if mark is not None:
                window.suspect_below = window.marked = mark
        log.info("assigned %s", ", ".join(f"{tp.topic}/{tp.partition}" for tp in assigned))

    async def _read_marks(self, assigned: list[TopicPartition]) -> dict[TopicPartition, int | None]:
        """The stored marks of newly assigned partitions; an unreachable store leaves them
        unknown (the old owner's whole backlog is then suspect: slower, never wrong)."""
        if self._marks is None or not assigned:
            return {}
        by_topic: dict[str, list[int]] = {}
        for tp in assigned:
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        found: dict[TopicPartition, int | None] = {}
        try:
            for topic, partitions in by_topic.items():
                marks = await self._marks.reached(topic, partitions)
                found.update({TopicPartition(topic, p): m for p, m in marks.items()})
        except StoreUnreachable as exc:
            log.warning("partition marks unknown (%s): the backlog is treated as suspect", exc)
            return {}
        return found

    # -- watchdog ----------------------------------------------------------------------------

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            self._check_progress()

    def _check_progress(self) -> None:
        stalled = False
        now = time.monotonic()
        held = not self._pipeline.intake.is_set()  # Conductor's outage, not a stuck consumer
        for tp, window in list(self._windows.items()):
            if held:
                window.last_progress = now
            end = self._readable_end(tp)  # an open transaction is not lag
            position = window.committed if window.committed is not None else window.next_offset
            if end is None or position is None:
                continue
            lag = max(0, end - position)
            self._metrics.set(
                "gateway_consumer_lag", lag, topic=tp.topic, partition=str(tp.partition)
            )
            if lag and now - window.last_progress > STALL_SECONDS:
                stalled = True
                log.warning(
                    "%s/%d: no progress for %.0fs with lag %d",
                    tp.topic,
                    tp.partition,
                    now - window.last_progress,
                    lag,
                )
        if self.unassigned:
            stalled = True
            log.warning(
                "no partitions assigned for %.0fs: the consumer group does not rebalance",
                now - (self._unassigned_since or now),
            )
        self.stalled = stalled
        self._metrics.set("gateway_consumer_stalled", 1 if stalled else 0)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Revoke: drain and commit, taking no lock the poll loop holds (aiokafka deadlock A15)."""

    def __init__(self, source: KafkaSource) -> None:
        self._source = source

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._source.on_revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._source.on_assigned(list(assigned))


def unavailable_cause(exc: BaseException, settings: KafkaSettings) -> str:
    """The one-line reason Kafka could not be used at start, naming the setting to check.

    The single place that words the Kafka client's start-up failures (/readyz, the log)."""
    servers = ",".join(settings.bootstrap_servers)
    detail = str(exc).splitlines()[0] if str(exc) else ""
    if detail.startswith(type(exc).__name__):
        detail = detail[len(type(exc).__name__) :].lstrip(": ")
    what = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return (
        f"cannot connect to {servers} ({what}); check kafka.bootstrap_servers and that the "
        "brokers are up"
    )


def bare_event(record: Any) -> Event:
    """The least Event a record always has: enough to dead-letter it where it came from."""
    return Event(
        source="kafka",
        raw=record.value if isinstance(record.value, bytes) else b"",
        body=None,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
    )


def _correlation_id(headers: Any, settings: KafkaSettings) -> str | None:
    """The request's correlation id, its bytes kept (binary ids are sent back as they came)."""
    if not headers:  # most records: no second pass over nothing
        return None
    found = dict(headers)
    value = found.get(settings.correlation_id_header) or found.get("correlation-id")
    return header_text(value) if value else None


def to_event(
    record: Any, limits: LimitSettings, settings: KafkaSettings | None = None
) -> tuple[Event, str | None]:
    """Build the Event; a message that cannot be used at all gets an error instead of a body.

    A request names its reply topic and correlation id in the headers `settings` names
    (Spring's `kafka_replyTopic` / `kafka_correlationId` by default)."""
    settings = settings or KafkaSettings()
    raw: bytes = record.value or b""
    headers = {k: (v or b"").decode("utf-8", "replace") for k, v in record.headers or ()}
    key = record.key.decode("utf-8", "replace") if record.key is not None else None
    body, body_error, error = read_body(raw, limits)
    event = Event(
        source="kafka",
        raw=raw,
        body=body,
        body_error=body_error,
        headers=headers,
        key=key,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        message_id=headers.get("message-id"),
        correlation_id=_correlation_id(record.headers, settings),
        reply_to=headers.get(settings.reply_topic_header) or None,
        timestamp=record.timestamp,
    )
    return event, error

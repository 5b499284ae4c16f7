"""The store's contract. Dispatch writes it before settling a delivery; the tracker drains it.

Invariant: `record_start` writes the dedupe record and (when asked) the outbox row in ONE
transaction, and dispatch calls it after Conductor answered and before the delivery is acked or
committed. A redelivered start finds the record with `find_start` and reuses the workflow id.

Claims: before calling Conductor for a key that may repeat, dispatch claims it
(`claim_start`): a claim row with an owner and a lease, written before the call and removed
by the `record_start` of the key. While one owner holds a live claim, the others wait for its
record; a claim left without a record (a crash, a failed call) marks the key as in doubt, and
its next owner asks Conductor by correlation id before starting again (gateway.executor).

Marks (Kafka): before a fetched batch of a partition is acted on, the source raises the
partition's mark past it (`reach`). After a crash or a rebalance, the partition's next owner
treats the records below the mark as possibly processed (suspect: claimed, and asked of
Conductor) and every record at or above it as new (the cheap path). A mark is raised ahead in
steps, so it costs one durable write per step of records, not per batch; too high a mark only
makes a few more records take the careful path after a crash, too low a mark is never written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from gateway.errors import GatewayError


@dataclass(frozen=True, slots=True)
class TrackRequest:
    """Ask the tracker to publish what becomes of a started workflow."""

    destination: str  # Destination spec (`kafka:topic`, `amqp:queue`, `amqp:ex/key`)
    statuses: frozenset[str]
    rule: str
    source_event_id: str  # Event.source_id of the triggering message
    source: str  # Event.channel, e.g. kafka:orders
    reply_correlation_id: str | None = None  # AMQP request/reply: echo on the answer
    # A second event of the same workflow, to publish beside the first: the rule's completion
    # when the row is a deferred reply (one row per workflow keeps both, and both go out).
    also_destination: str | None = None
    also_statuses: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class PendingCompletion:
    """One outbox row: a workflow whose terminal status has not been published yet."""

    workflow_id: str
    request: TrackRequest
    attempts: int  # polls so far, drives the adaptive backoff
    next_poll_at: float  # epoch seconds
    last_status: str | None  # last status seen, for optional transition events
    created_at: float = 0.0  # epoch seconds when the row was tracked (for the age limit)
    publish_failures: int = 0  # consecutive failed publishes of its event


@dataclass(frozen=True, slots=True)
class StartRecord:
    """One `record_start` waiting for its batch's transaction."""

    key: str
    workflow_id: str
    rule: str
    track: TrackRequest | None
    created_at: float


ClaimState = Literal["recorded", "claimed", "in_doubt", "held"]


@dataclass(frozen=True, slots=True)
class Claim:
    """What claiming a start key found.

    recorded: the key has its workflow already (`workflow_id`); nothing to start.
    claimed:  the caller owns the key now; no earlier claim was left behind.
    in_doubt: the caller owns the key now, taken over from a claim that never got its record
              (its owner crashed, failed, or outlived the lease): the start may have reached
              Conductor, so ask Conductor before starting.
    held:     another live owner is starting it; ask again a little later.
    """

    state: ClaimState
    workflow_id: str | None = None


def replica_of(owner: str) -> str:
    """The replica part of a claim owner `<replica id>#<process incarnation>`."""
    return owner.partition("#")[0]


class StoreUnreachable(GatewayError):
    """The shared store did not answer (network, server down): try again, nothing was lost."""


class Store(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def find_start(self, key: str) -> str | None:
        """The workflow id recorded for a dedupe key, or None."""

    async def started_workflows(self, workflow_ids: Sequence[str]) -> set[str]:
        """Which of these workflow ids the gateway started (have a dedupe record): one query."""

    async def record_start(
        self, key: str, workflow_id: str, rule: str, track: TrackRequest | None = None
    ) -> str:
        """Record key -> workflow id (and the outbox row) atomically; return the stored id.

        If the key exists already, nothing changes and the existing id is returned. The key's
        claim, whoever owns it, is removed in the same transaction.
        """

    async def claim_start(self, key: str, owner: str, lease_seconds: float) -> Claim:
        """Claim `key` for `owner` (`<replica id>#<incarnation>`) for `lease_seconds`.

        A claim is taken over when its lease ran out, or when its owner is an earlier
        incarnation of the same replica (a restarted process: the old one is gone).
        """

    async def release_claim(self, key: str, owner: str) -> None:
        """The owner's start failed: its claim expires now but stays, so the key is in doubt."""

    async def reached(self, topic: str, partitions: Sequence[int]) -> dict[int, int | None]:
        """Each partition's mark: the offset below which a gateway may have acted on records.

        0 when no gateway acted on the partition with this store; None when that is unknown
        (a store kept records before it kept marks: treat its whole backlog as suspect).
        """

    async def reach(self, topic: str, partition: int, offset: int) -> None:
        """Raise the partition's mark to `offset` (a lower one leaves it); durable on return."""

    async def track(self, workflow_id: str, track: TrackRequest) -> None:
        """Add an outbox row without a dedupe record (execute_workflow replies)."""

    async def due(self, now: float, limit: int) -> Sequence[PendingCompletion]:
        """Outbox rows whose next poll is due, oldest first."""

    async def reschedule(
        self,
        workflow_id: str,
        next_poll_at: float,
        last_status: str | None,
        publish_failures: int = 0,
    ) -> None:
        """Poll again at `next_poll_at`; counts a poll and stores the publish failure streak."""

    async def mark_published(self, workflow_id: str) -> None:
        """The completion was confirmed by the broker: the row is done."""

    async def pending_count(self) -> int: ...

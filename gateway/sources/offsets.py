"""A Kafka partition's window of handed-out offsets, its contiguous commit watermark, and its
mark in the store (gateway.store.base: the offset below which records may have been acted on).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aiokafka import TopicPartition

from gateway.sources.base import Ordered


class Marks(Protocol):
    """The store's partition marks (gateway.store.base.Store.reached / reach)."""

    async def reached(self, topic: str, partitions: Sequence[int]) -> dict[int, int | None]: ...

    async def reach(self, topic: str, partition: int, offset: int) -> None: ...


@dataclass(slots=True)
class PartitionWindow:
    """Offsets handed out and not yet below the watermark, for one partition."""

    tp: TopicPartition
    pending: deque[int] = field(default_factory=deque)
    finished: set[int] = field(default_factory=set)
    next_offset: int | None = None  # first offset not settled: what to commit
    committed: int | None = None
    # Records below it may have been acted on before this member took the partition: the
    # store's mark, else (unknown) the high-water mark at the first fetch after assignment.
    suspect_below: int | None = None
    marked: int = 0  # the partition's mark as stored: records at or above it wait for a raise
    last_progress: float = field(default_factory=time.monotonic)
    ordered: Ordered = field(default_factory=Ordered)
    revoked: bool = False

    def add(self, offset: int) -> None:
        self.pending.append(offset)
        if self.next_offset is None:
            self.next_offset = offset

    def finish(self, offset: int) -> None:
        self.finished.add(offset)
        while self.pending and self.pending[0] in self.finished:
            done = self.pending.popleft()
            self.finished.discard(done)
            self.next_offset = done + 1
        if self.pending:
            self.next_offset = self.pending[0]
        self.last_progress = time.monotonic()

    def skip_to(self, position: int) -> None:
        """With nothing pending, every offset below the consumer's `position` was settled or
        holds no event (a transaction marker, an aborted transaction's record, a record
        compacted away): the watermark moves there, so the commit reaches the partition's end."""
        if not self.pending and (self.next_offset is None or position > self.next_offset):
            self.next_offset = position

    def to_commit(self) -> int | None:
        if self.next_offset is None or self.next_offset == self.committed:
            return None
        return self.next_offset

"""The outbox row as both stores write and read it: one column order, one mapping.

SQLite and PostgreSQL keep the same outbox columns; only their SQL dialects differ, so the
conversion between a row and `TrackRequest` / `PendingCompletion` lives here once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from gateway.store.base import PendingCompletion, TrackRequest

# The order `pending` reads a row in; both stores SELECT (or RETURN) exactly these columns.
OUTBOX_COLUMNS = (
    "workflow_id, destination, statuses, rule, source_event_id, source, reply_correlation_id,"
    " attempts, next_poll_at, last_status, created_at, publish_failures, also_publish"
)


def outbox_row(
    workflow_id: str, track: TrackRequest, now: float, first_poll_delay: float
) -> tuple[Any, ...]:
    """The values of a new outbox row, in the order of both stores' INSERT placeholders."""
    return (
        workflow_id,
        track.destination,
        ",".join(sorted(track.statuses)),
        track.rule,
        track.source_event_id,
        track.source,
        track.reply_correlation_id,
        now + first_poll_delay,
        now,
        _also(track),
    )


def _also(track: TrackRequest) -> str | None:
    """The second event's destination and statuses, as JSON in one column (None: none)."""
    if track.also_destination is None:
        return None
    statuses = sorted(track.also_statuses)
    return orjson.dumps({"destination": track.also_destination, "statuses": statuses}).decode()


def pending(row: Sequence[Any], due_at: float | None = None) -> PendingCompletion:
    """A row read in `OUTBOX_COLUMNS` order; `due_at` replaces its next_poll_at when given."""
    (wf, destination, statuses, rule, event_id, source, reply, attempts, next_at, last) = row[:10]
    created_at, publish_failures, also = row[10:13]
    second = orjson.loads(also) if also else {}
    request = TrackRequest(
        destination=destination,
        statuses=frozenset(s for s in statuses.split(",") if s),
        rule=rule,
        source_event_id=event_id,
        source=source,
        reply_correlation_id=reply,
        also_destination=second.get("destination"),
        also_statuses=frozenset(second.get("statuses", ())),
    )
    return PendingCompletion(
        wf,
        request,
        int(attempts),
        float(next_at if due_at is None else due_at),
        last,
        float(created_at),
        int(publish_failures),
    )

"""Dead-letter context headers, in the style of Kafka Connect's `__connect.errors.*`.

A dead letter keeps the original key, body and headers, and adds `x-gateway-error-*` headers
that say where the message came from and why it was given up on. `origin` is a Destination spec
of the source (`kafka:<topic>` or `amqp:<queue>`) so `gateway dlq replay` can put it back.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.errors import ConductorError
from gateway.events import Event

PREFIX = "x-gateway-error-"
ATTEMPTS_HEADER = "x-gateway-attempts"
FIRST_SEEN_HEADER = "x-gateway-first-seen"
# An AMQP message put straight on its queue (a delayed retry, a replay) carries the exchange
# and routing key it first arrived with, so rules bound to them still see it.
ORIGIN_EXCHANGE = "x-gateway-exchange"
ORIGIN_ROUTING_KEY = "x-gateway-routing-key"
MAX_MESSAGE_CHARS = 1_000  # an error message may quote a payload; keep headers small


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a delivery is dead-lettered, and what was being done when it failed."""

    reason: str
    rule: str | None = None
    action: str | None = None
    cause: BaseException | None = None


def error_headers(
    event: Event, failure: Failure, *, attempts: int, first_seen: float
) -> dict[str, str]:
    """The original headers plus the `x-gateway-error-*` context headers."""
    headers = {k: v for k, v in event.headers.items() if not k.startswith(PREFIX)}
    headers.pop(ATTEMPTS_HEADER, None)
    headers.pop(FIRST_SEEN_HEADER, None)
    context = {
        "origin": event.channel,
        "source-id": event.source_id,
        "reason": failure.reason,
        "attempts": str(attempts),
        "first-seen": _iso(first_seen),
        "time": _iso(time.time()),
    }
    context.update(_source_fields(event))
    if failure.rule:
        context["rule"] = failure.rule
    if failure.action:
        context["action"] = failure.action
    context.update(_cause_fields(failure.cause))
    headers.update({PREFIX + k: v[:MAX_MESSAGE_CHARS] for k, v in context.items()})
    return headers


def strip_error_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers the message had before it was dead-lettered (for replay).

    An AMQP message keeps its first exchange and routing key in the origin headers, because
    replay puts it straight on its queue.
    """
    restored = {k: v for k, v in headers.items() if not k.startswith(PREFIX)}
    if PREFIX + "exchange" in headers:
        restored[ORIGIN_EXCHANGE] = headers[PREFIX + "exchange"]
    if PREFIX + "routing-key" in headers:
        restored[ORIGIN_ROUTING_KEY] = headers[PREFIX + "routing-key"]
    return restored


def _source_fields(event: Event) -> dict[str, str]:
    if event.source == "kafka":
        return {
            "topic": str(event.topic),
            "partition": str(event.partition),
            "offset": str(event.offset),
        }
    fields = {"queue": str(event.queue)}
    if event.exchange is not None:
        fields["exchange"] = event.exchange
    if event.routing_key is not None:
        fields["routing-key"] = event.routing_key
    if event.message_id is not None:
        fields["message-id"] = event.message_id
    return fields


def _cause_fields(cause: BaseException | None) -> dict[str, str]:
    if cause is None:
        return {}
    fields = {"class": type(cause).__name__, "message": str(cause)}
    if isinstance(cause, ConductorError):
        if cause.status is not None:
            fields["conductor-status"] = str(cause.status)
        message = cause.body.get("message")
        if message:
            fields["conductor-message"] = str(message)
    return fields


def _iso(epoch: float) -> str:
    millis = int(epoch * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{millis:03d}Z"

"""The Event envelope: one incoming message, whichever broker it came from.

Sources build an `Event` from the broker's message; rules read it through `envelope()`; settlement
uses `source_id` for dead-letter headers and as the default dedupe key.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from gateway.errors import EventError

SourceKind = Literal["kafka", "amqp"]


@dataclass(frozen=True, slots=True)
class Event:
    """A message as the rules see it. `body` is parsed JSON, or the text when it is not JSON."""

    source: SourceKind
    raw: bytes
    body: Any
    body_error: str | None = None  # why `body` is text and not JSON (None when it parsed)
    headers: Mapping[str, str] = field(default_factory=dict)
    key: str | None = None
    topic: str | None = None  # Kafka topic
    partition: int | None = None
    offset: int | None = None
    queue: str | None = None  # AMQP queue consumed from
    exchange: str | None = None
    routing_key: str | None = None
    message_id: str | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    timestamp: int | None = None  # epoch milliseconds, as the broker stamped it

    @property
    def channel(self) -> str:
        """`kafka:<topic>` or `amqp:<queue>`: what rules select on."""
        return f"kafka:{self.topic}" if self.source == "kafka" else f"amqp:{self.queue}"

    @property
    def source_id(self) -> str:
        """A stable id of this message across redeliveries (the default dedupe key)."""
        if self.source == "kafka":
            return f"kafka:{self.topic}:{self.partition}:{self.offset}"
        if self.message_id:
            return f"amqp:{self.queue}:{self.message_id}"
        # Without a message id an AMQP message has no stable identity; fall back to content.
        import hashlib

        digest = hashlib.sha256(self.raw).hexdigest()[:32]
        return f"amqp:{self.queue}:sha256:{digest}"

    def envelope(self) -> dict[str, Any]:
        """The document templates and conditions are evaluated against."""
        return {
            "body": self.body,
            "headers": dict(self.headers),
            "key": self.key,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "queue": self.queue,
            "exchange": self.exchange,
            "routing_key": self.routing_key,
            "message_id": self.message_id,
            "correlation_id": self.correlation_id,
            "reply_to": self.reply_to,
            "timestamp": self.timestamp,
            "source": self.source,
        }


_NOT_PARSED = object()
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def parse_body(raw: bytes, *, max_bytes: int, max_depth: int) -> tuple[Any, str | None]:
    """Return (body, problem). JSON parses to its value; otherwise the text and why it is text.

    Raises EventError when the message cannot be used at all: too large or not UTF-8.
    """
    if len(raw) > max_bytes:
        raise EventError(f"message is {len(raw)} bytes, over the limit of {max_bytes} bytes")
    # Fast path: orjson parses (its own nesting limit, 1024, bounds a JSON bomb) and the depth
    # is measured on the value. What orjson refuses (NaN, huge integers, lone surrogates,
    # deeper nesting, bad UTF-8) takes the path below, which decides exactly as before, and
    # so does a body with 19 digits in a row (orjson would turn a huge integer into a float).
    try:
        value = _NOT_PARSED if _LONG_DIGITS.search(raw) else orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = _NOT_PARSED
    if value is not _NOT_PARSED:
        depth = _value_depth(value)
        if depth > max_depth:
            return raw.decode("utf-8"), _too_deep(depth, max_depth)
        return value, None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventError(f"body is not UTF-8 (byte {exc.start}): {exc.reason}") from None
    depth = _nesting_depth(text)
    if depth > max_depth:
        return text, _too_deep(depth, max_depth)
    try:
        return json.loads(text), None
    except (ValueError, RecursionError) as exc:
        return text, f"body is not JSON: {exc}"


BINARY = "base64:"  # marks a header value that was not UTF-8 text


def header_text(value: bytes) -> str:
    """A correlation header's bytes as the text the gateway carries and stores: UTF-8 text as
    it is; other bytes (Spring's ReplyingKafkaTemplate sends a UUID's 16 raw bytes), and text
    that starts with the mark, as the mark and base64, so `header_bytes` gives back the bytes."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and not text.startswith(BINARY):
        return text
    return BINARY + base64.b64encode(value).decode("ascii")


def header_bytes(text: str) -> bytes:
    """The header bytes `header_text` was given."""
    if text.startswith(BINARY):
        return base64.b64decode(text[len(BINARY) :])
    return text.encode("utf-8")


def _too_deep(depth: int, max_depth: int) -> str:
    return f"JSON nesting depth {depth} is over the limit of {max_depth}"


def _value_depth(value: Any) -> int:
    """Nesting depth of a value orjson parsed (a scalar is 0, `[]` and `{}` are 1), level by
    level: two list comprehensions per level, not a Python step per element."""
    depth = 0
    level = [value]
    while True:
        containers = [item for item in level if type(item) is dict or type(item) is list]
        if not containers:
            return depth
        depth += 1
        level = [
            child
            for item in containers
            for child in (item.values() if type(item) is dict else item)
        ]


def _nesting_depth(text: str) -> int:
    """Deepest bracket nesting outside strings, without building anything (a JSON-bomb guard)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest

"""Dead-letter context headers, in the style of Kafka Connect's `__connect.errors.*`.

A dead letter keeps the original key, body and headers, and adds `x-gateway-error-*` headers
that say where the message came from and why it was given up on. `origin` is a Destination spec
of the source (`kafka:<topic>` or `amqp:<queue>`) so `gateway dlq replay` can put it back.

Only when the dead-letter broker refuses the size (`MessageTooLarge`) is the body taken out:
it is kept in a file beside the store (`KeptBodies`, named by its SHA-256), and the dead letter
carries `x-gateway-error-body-ref: sha256:<hex>` and `-original-bytes`, so `gateway dlq replay`
restores the exact bytes (and checks them against the hash).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import ConductorError, GatewayError
from gateway.events import Event
from gateway.settings import StoreSettings

PREFIX = "x-gateway-error-"
ATTEMPTS_HEADER = "x-gateway-attempts"
FIRST_SEEN_HEADER = "x-gateway-first-seen"
# An AMQP message put straight on its queue (a delayed retry, a replay) carries the exchange
# and routing key it first arrived with, so rules bound to them still see it.
ORIGIN_EXCHANGE = "x-gateway-exchange"
ORIGIN_ROUTING_KEY = "x-gateway-routing-key"
MAX_MESSAGE_CHARS = 1_000  # an error message may quote a payload; keep headers small
BODY_REF = PREFIX + "body-ref"  # sha256:<hex> of a body kept beside the store
ORIGINAL_BYTES = PREFIX + "original-bytes"
KEPT_DIRECTORY = "dead-letter-bodies"  # beside the SQLite file (store.sqlite_path)


class KeptBodyMissing(GatewayError):
    """A dead letter points to a kept body that is not there (or not the same bytes)."""


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


class KeptBodies:
    """Bodies of dead letters their broker refused for size: one file each, named by hash."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def beside(cls, store: StoreSettings) -> KeptBodies:
        """The directory next to the SQLite file (also with PostgreSQL: a local volume)."""
        return cls.beside_path(store.sqlite_path)

    @classmethod
    def beside_path(cls, sqlite_path: Path) -> KeptBodies:
        return cls(sqlite_path.parent / KEPT_DIRECTORY)

    async def keep(self, body: bytes) -> str:
        """Write `body` durably (temporary file, fsync, rename); return its reference."""
        digest = hashlib.sha256(body).hexdigest()
        await asyncio.to_thread(self._write, digest, body)
        return f"sha256:{digest}"

    async def read(self, ref: str) -> bytes:
        """The bytes of `ref`, checked against its hash."""
        path, digest = self._path(ref), ref.removeprefix("sha256:")
        try:
            body = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise KeptBodyMissing(f"{BODY_REF} {ref}: cannot read {path}: {exc.strerror}") from None
        if hashlib.sha256(body).hexdigest() != digest:
            raise KeptBodyMissing(f"{BODY_REF} {ref}: {path} does not hold those bytes")
        return body

    async def forget(self, ref: str) -> None:
        await asyncio.to_thread(self._path(ref).unlink, missing_ok=True)

    def _path(self, ref: str) -> Path:
        digest = ref.removeprefix("sha256:")
        if not ref.startswith("sha256:") or len(digest) != 64 or not digest.isalnum():
            raise KeptBodyMissing(f"{BODY_REF} {ref!r} is not sha256:<64 hex digits>")
        return self.directory / f"{digest}.bin"

    def _write(self, digest: str, body: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / f"{digest}.bin"
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".keeping-")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(body)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


async def without_body(
    body: bytes, headers: dict[str, str], kept: KeptBodies | None, refusal: str
) -> tuple[bytes, dict[str, str]] | None:
    """A dead letter the broker refused for size, made smaller: first its body goes (kept in
    `kept` when given), then the original headers. None when nothing is left to take out."""
    fitted = dict(headers)
    if body:
        fitted[ORIGINAL_BYTES] = str(len(body))
        if kept is None:
            fitted[PREFIX + "truncated"] = f"body removed: {refusal}"[:MAX_MESSAGE_CHARS]
        else:
            fitted[BODY_REF] = await kept.keep(body)
        return b"", fitted
    if any(not name.startswith(PREFIX) for name in headers):
        fitted = {k: v for k, v in headers.items() if k.startswith(PREFIX)}
        note = fitted.get(PREFIX + "truncated", "")
        fitted[PREFIX + "truncated"] = (note + "; " if note else "") + "original headers removed"
        return b"", fitted
    return None

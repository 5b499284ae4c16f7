"""`gateway dlq replay`: put dead letters back on the topic or queue they came from.

Each dead letter names its origin in `x-gateway-error-origin`; replay republishes the original
body, key and headers (the `x-gateway-error-*` headers stripped) there, waits for the broker's
confirmation, and only then marks the dead letter handled. `--rule` replays only dead letters
of that rule; `--limit` stops after N.
"""

from __future__ import annotations

import logging

from gateway.deadletters import PREFIX, strip_error_headers
from gateway.errors import ConfigError
from gateway.plan import Destination
from gateway.settings import Settings
from gateway.sinks import Publisher
from gateway.sources.stored import open_stored

log = logging.getLogger(__name__)


async def replay(settings: Settings, source: str, *, rule: str | None, limit: int | None) -> int:
    """Republish dead letters from `source`; return how many were replayed."""
    destination = Destination.parse(source)
    try:
        reader = open_stored(settings, destination, rule or "all")
    except ValueError as exc:
        raise ConfigError(f"--from {source}: {exc}") from None
    count = 0
    async with Publisher(settings) as publisher, reader as (messages, done):
        async for message in messages:
            if limit is not None and count >= limit:
                break
            if rule is not None and message.headers.get(PREFIX + "rule") != rule:
                continue
            origin = message.headers.get(PREFIX + "origin")
            if not origin:
                log.warning(
                    "skipping a message without %sorigin: not a gateway dead letter", PREFIX
                )
                continue
            await publisher.publish(
                Destination.parse(origin),
                message.body,
                key=message.key,
                headers=strip_error_headers(message.headers),
                correlation_id=message.correlation_id,
                content_type=message.headers.get("content-type", "application/json"),
            )
            await done(message)
            count += 1
    return count

"""Stand-ins for the broker side, for tests that exercise the gateway without brokers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from gateway.errors import PublishError
from gateway.plan import Destination


class Published(NamedTuple):
    destination: Destination
    body: bytes
    headers: dict[str, str]
    correlation_id: str | None


class RecordingSink:
    """A Sink that records every confirmed publish.

    `failures`: the next N publishes are not confirmed (PublishError); `failing`: none is,
    until a test sets it back to False. `attempts` counts every publish, confirmed or not.
    """

    def __init__(self, *, failures: int = 0, failing: bool = False) -> None:
        self.failures = failures
        self.failing = failing
        self.attempts = 0
        self.records: list[Published] = []

    async def publish(
        self,
        destination: Destination,
        body: bytes,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
        correlation_id: str | None = None,
        content_type: str = "application/json",
    ) -> None:
        self.attempts += 1
        if self.failures:
            self.failures -= 1
            raise PublishError("broker did not confirm")
        if self.failing:
            raise PublishError("broker did not confirm")
        self.records.append(Published(destination, body, dict(headers or {}), correlation_id))

    @property
    def published(self) -> list[tuple[Destination, bytes, dict[str, str]]]:
        """(destination, body, headers) of each confirmed publish, in order."""
        return [(r.destination, r.body, r.headers) for r in self.records]

    @property
    def sent(self) -> list[tuple[str, dict[str, Any], str | None]]:
        """(destination, JSON body decoded, correlation id) of each confirmed publish."""
        return [(str(r.destination), json.loads(r.body), r.correlation_id) for r in self.records]

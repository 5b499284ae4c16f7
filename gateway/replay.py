"""`gateway dlq replay`: put dead letters back on the topic or queue they came from."""

from __future__ import annotations

from gateway.errors import ConfigError
from gateway.settings import Settings


async def replay(settings: Settings, source: str, *, rule: str | None, limit: int | None) -> int:
    raise ConfigError("dlq replay is not built yet")

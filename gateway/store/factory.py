"""Pick the store the settings ask for: PostgreSQL when `store.postgres_dsn` is set, else SQLite."""

from __future__ import annotations

from gateway.settings import Settings
from gateway.store.postgres import PostgresStore
from gateway.store.sqlite import SqliteStore


def build_store(settings: Settings) -> SqliteStore | PostgresStore:
    """An unopened store; use it as `async with build_store(settings) as store:`.

    New outbox rows come due after `tracker.min_interval`, the tracker's first poll delay.
    """
    first_poll = settings.tracker.min_interval
    if settings.store.postgres_dsn is not None:
        return PostgresStore(
            settings.store.postgres_dsn.get_secret_value(), first_poll_delay=first_poll
        )
    return SqliteStore(settings.store.sqlite_path, first_poll_delay=first_poll)

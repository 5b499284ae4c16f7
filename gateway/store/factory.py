"""Pick the store the settings ask for: PostgreSQL when `store.postgres_dsn` is set, else SQLite."""

from __future__ import annotations

import sqlite3

from gateway.errors import GatewayError
from gateway.settings import Settings
from gateway.store.postgres import PostgresStore
from gateway.store.sqlite import SqliteStore

# What opening a store raises when its file or server cannot be used (PostgresStore.open
# turns asyncpg's connection errors into OSError).
OPEN_ERRORS = (OSError, sqlite3.Error)


class StoreUnavailable(GatewayError):
    """The store could not be opened at start-up (the message names the setting and why)."""


def build_store(settings: Settings) -> SqliteStore | PostgresStore:
    """An unopened store; use it as `async with build_store(settings) as store:`.

    New outbox rows come due after `tracker.min_interval`, the tracker's first poll delay.
    """
    first_poll = settings.tracker.min_interval
    keep, every = settings.store.retention_seconds, settings.store.purge_interval_seconds
    if settings.store.postgres_dsn is not None:
        return PostgresStore(
            settings.store.postgres_dsn.get_secret_value(),
            first_poll_delay=first_poll,
            claim_seconds=settings.store.claim_seconds,
            retention_seconds=keep,
            purge_interval=every,
        )
    return SqliteStore(
        settings.store.sqlite_path,
        first_poll_delay=first_poll,
        retention_seconds=keep,
        purge_interval=every,
    )


def unavailable_cause(exc: BaseException, settings: Settings) -> str:
    """The one-line reason the store could not be opened, naming the setting to check.

    The single place that words the stores' start-up failures (/readyz, the log)."""
    detail = (str(exc).splitlines() or [""])[0] or type(exc).__name__
    if settings.store.postgres_dsn is not None:
        return detail  # PostgresStore.open already names store.postgres_dsn, without secrets
    path = settings.store.sqlite_path
    return f"cannot open SQLite file {path} ({detail}); check store.sqlite_path"

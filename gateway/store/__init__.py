"""Durable store: start dedupe records and the completion outbox (SQLite default, PostgreSQL)."""

from gateway.store.base import PendingCompletion, Store, TrackRequest

__all__ = ["PendingCompletion", "Store", "TrackRequest"]

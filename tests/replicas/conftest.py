"""The replicas scenario shares the store tests' throwaway PostgreSQL server."""

from tests.store.conftest import postgres_dsn, postgres_server

__all__ = ["postgres_dsn", "postgres_server"]

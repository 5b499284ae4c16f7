"""The daemon tests' fixtures (a dev server and a client for it), shared here."""

from tests.daemon.conftest import conductor, devserver

__all__ = ["conductor", "devserver"]

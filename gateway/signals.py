"""SIGTERM and SIGINT for `gateway run`: held from the first line of `main`, handled by the loop.

A platform may send SIGTERM at any moment, including while Python is still importing the
gateway (about a second on a small machine). `hold()` runs first in `gateway.cli.main` and
records such a signal instead of letting it kill the process; `gateway run` then either sees
it and exits 0 before opening anything, or installs its loop handlers (`handle`). Any other
command gets the default behaviour back (`release()`), with a held signal re-delivered.
`gateway worker` installs the same loop handlers: the first signal stops, a second exits.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging

HANDLED = (signal.SIGTERM, signal.SIGINT)
_held: list[int] = []


def hold() -> None:
    """Record SIGTERM/SIGINT instead of dying, until `release()` or the daemon's handlers."""
    for signum in HANDLED:
        signal.signal(signum, _record)


def held() -> list[int]:
    """The signals recorded since `hold()`."""
    return list(_held)


def release() -> None:
    """Default handling again; a signal recorded meanwhile is delivered now."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in _held:
        os.kill(os.getpid(), signum)
    _held.clear()


def handle(first: Callable[[int], None], second: str, log: logging.Logger) -> list[int]:
    """Loop handlers for SIGTERM/SIGINT: the first signal calls `first(signum)`; a second one
    logs `second: exiting now...` and exits at once. Returns the signals received (it grows)."""
    import asyncio  # not at the top: this module loads before anything else (see `hold`)

    loop = asyncio.get_running_loop()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        if len(received) > 1:
            log.error("second signal: exiting now%s", second)
            # the shell's convention, 128 + signal number: 130 for SIGINT, 143 for SIGTERM
            os._exit(128 + signum)
        first(signum)

    for signum in HANDLED:
        loop.add_signal_handler(signum, on_signal, signum)
    return received


def _record(signum: int, _frame: FrameType | None) -> None:
    _held.append(signum)

"""SIGTERM and SIGINT for `gateway run`: held from the first line of `main`, handled by the loop.

A platform may send SIGTERM at any moment, including while Python is still importing the
gateway (about a second on a small machine). `hold()` runs first in `gateway.cli.main` and
records such a signal instead of letting it kill the process; `gateway run` then either sees
it and exits 0 before opening anything, or installs its loop handlers (`on_signal`). Any other
command gets the default behaviour back (`release()`), with a held signal re-delivered.
"""

from __future__ import annotations

import os
import signal
from types import FrameType

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


def _record(signum: int, _frame: FrameType | None) -> None:
    _held.append(signum)

"""Stopping a background task: cancel it and wait until it has really finished.

Awaiting the cancelled task is what makes the stop complete (its `finally` blocks have run and
nothing it owns is still in use), and its CancelledError is the expected ending, not an error.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel(task: asyncio.Future[Any] | None) -> None:
    """Cancel `task` (None: nothing to stop) and wait for it to finish."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

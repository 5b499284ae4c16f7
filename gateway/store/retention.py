"""Retention of dedupe records: both stores purge old ones in the background with this loop.

A dedupe record only matters while its event can still be delivered again. Past the source's
retention (Kafka's retention.ms, the longest a message waits in an AMQP queue) no redelivery
can arrive, so the record is dead weight: without a purge the table grows by one row per start
forever (170 million rows a day at 2,000 starts/s), and with it the index every look-up walks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def purge_forever(
    purge: Callable[[float], Awaitable[int]], retention_seconds: float, interval: float
) -> None:
    """Every `interval` seconds, `purge(now - retention_seconds)`; a failure waits a turn."""
    while True:
        try:
            purged = await purge(time.time() - retention_seconds)
        except Exception as exc:
            log.warning("purge of dedupe records older than %gs failed: %s", retention_seconds, exc)
        else:
            if purged:
                log.info("purged %d dedupe records older than %gs", purged, retention_seconds)
        await asyncio.sleep(interval)

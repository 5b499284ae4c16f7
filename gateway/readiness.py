"""Why the gateway is not ready yet, and start-up steps retried until their dependency answers.

A dependency that is down at start (Kafka, RabbitMQ, the store, Conductor) does not stop
`gateway run`: the step that opens it is retried with the shared capped backoff (`RetryPolicy`,
up to `STARTUP_BACKOFF.max_backoff` seconds), /readyz answers 503 naming the component and the
cause, and /healthz answers 200 as long as the start-up loop keeps making attempts. Each edge
package turns its transport's exception into the one-line cause (sources/kafka.py,
sources/amqp.py, store/factory.py, conductor/); this module only prefixes the component.

The same cause is logged at WARNING when it first appears (or changes) and then at most once
every `LOG_EVERY_SECONDS`, so a pod waiting for its broker does not flood its log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway.errors import GatewayError
from gateway.plan import RetryPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")

LOG_EVERY_SECONDS = 30.0
STARTUP_BACKOFF = RetryPolicy(initial_backoff=0.5, max_backoff=30.0, multiplier=2.0)
# /healthz fails only when the start-up loop has made no attempt for this long: an attempt
# that hangs (a connect the network swallows) rather than a dependency that refuses.
STALLED_AFTER_SECONDS = 180.0


class Readiness:
    """The open causes of unreadiness, one per component, and when start-up last progressed."""

    def __init__(self) -> None:
        self._causes: dict[str, str] = {}
        self._logged: dict[str, tuple[str, float]] = {}  # component -> (cause, when logged)
        self.opening: set[str] = set()  # components whose start-up step is being retried
        self.progress = time.monotonic()

    def fail(self, component: str, cause: str) -> None:
        """`component` is not usable because of `cause` (one line); logged, rate-limited."""
        self._causes[component] = cause
        last = self._logged.get(component)
        now = time.monotonic()
        if last is None or last[0] != cause or now - last[1] >= LOG_EVERY_SECONDS:
            log.warning("not ready: %s: %s", component, cause)
            self._logged[component] = (cause, now)

    def note(self, component: str, cause: str) -> None:
        """`component` is not usable yet, for an expected reason: shown, not logged."""
        self._causes[component] = cause

    def clear(self, component: str) -> None:
        self._causes.pop(component, None)
        if self._logged.pop(component, None) is not None:
            log.info("%s: ok again", component)

    def reasons(self) -> list[str]:
        return [f"{component}: {cause}" for component, cause in self._causes.items()]

    @property
    def stalled(self) -> bool:
        """True when no start-up attempt began or ended for `STALLED_AFTER_SECONDS`."""
        return time.monotonic() - self.progress > STALLED_AFTER_SECONDS


async def keep_trying(
    readiness: Readiness,
    component: str,
    pending: str,
    step: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy = STARTUP_BACKOFF,
) -> T:
    """Run `step` until it succeeds; each GatewayError is the one-line cause of not ready.

    `pending` is the reason shown while the first attempt runs ("store not open"). Anything
    that is not a GatewayError (a bug, a configuration the edge rejects) is raised at once.
    Cancellation (SIGTERM during start-up) propagates: the caller closes what was opened.
    """
    readiness.note(component, pending)
    readiness.opening.add(component)
    attempt = 0
    try:
        while True:
            attempt += 1
            readiness.progress = time.monotonic()
            try:
                result = await step()
            except GatewayError as exc:
                readiness.fail(component, one_line(str(exc)))
                readiness.progress = time.monotonic()
                await asyncio.sleep(policy.delay(attempt))
                continue
            readiness.clear(component)
            return result
    finally:
        readiness.opening.discard(component)


def one_line(text: str) -> str:
    """The first line of `text`, stripped (a cause must fit one log line and one JSON string)."""
    return (text.strip().splitlines() or [""])[0].strip()

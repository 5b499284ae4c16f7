"""The sink contract: publish one message and return only once the broker confirmed it.

`Publisher` (sinks/__init__.py) routes a `Destination` to the Kafka or AMQP sink. Dead letters
(dispatch), completion events and replies (tracker) all go through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, Self

from gateway.plan import Destination


class BrokerSink:
    """A sink with its own broker connection: `start()` opens it, `stop()` flushes and closes
    it, and `async with` does both."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class Sink(Protocol):
    async def publish(
        self,
        destination: Destination,
        body: bytes,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
        correlation_id: str | None = None,
        content_type: str = "application/json",
    ) -> None:
        """Publish and wait for the broker's confirmation.

        Raises `gateway.errors.PublishError` when the broker refused it, could not route it
        (AMQP mandatory publish returned), or did not confirm within the timeout.
        """

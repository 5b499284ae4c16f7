"""The Kafka edge of the relay: Conductor OSS's workflow status listener topic, read in batches
with offsets committed only after the batch was handled (at least once)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer

from gateway.settings import KafkaSettings
from gateway.sources.kafka_config import consumer_options


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """One listener record: its position and its JSON value (key = workflow id)."""

    topic: str
    partition: int
    offset: int
    value: bytes


class StatusTopic:
    """`async with StatusTopic(kafka, topic, group_id) as status:` then `await status.fetch()`
    and `await status.commit()` after the records were handled."""

    def __init__(self, settings: KafkaSettings, topic: str, group_id: str) -> None:
        options = consumer_options(settings) | {"group_id": group_id}
        options.pop("group_instance_id", None)  # the gateway's own static id is not ours
        self._consumer = AIOKafkaConsumer(topic, **options)

    async def __aenter__(self) -> StatusTopic:
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def fetch(self, timeout: float = 1.0, limit: int = 500) -> Sequence[StatusRecord]:
        batches = await self._consumer.getmany(timeout_ms=int(timeout * 1000), max_records=limit)
        return [
            StatusRecord(r.topic, r.partition, r.offset, r.value or b"")
            for records in batches.values()
            for r in records
        ]

    async def commit(self) -> None:
        await self._consumer.commit()

    async def rewind(self) -> None:
        """Go back to the last commit: the records fetched since are read again."""
        for tp in self._consumer.assignment():
            committed = await self._consumer.committed(tp)
            if committed is None:
                await self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, committed)

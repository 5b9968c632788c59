"""Reading and writing test topics directly (assign, no consumer group: no join delay on the broker)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from google.protobuf.message import Message
from hibiki_runtime.events import record_headers


async def produce(
    bootstrap: str,
    topic: str,
    records: Sequence[tuple[str, bytes | Message]],
    max_request_size: int = 1048576,
) -> None:
    """Send (key, value) records; protobuf values get the standard headers."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=max_request_size)
    await producer.start()
    try:
        futures = []
        for key, value in records:
            if isinstance(value, Message):
                futures.append(
                    await producer.send(
                        topic, value.SerializeToString(), key=key.encode(), headers=record_headers(value)
                    )
                )
            else:
                futures.append(await producer.send(topic, value, key=key.encode()))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_until(
    bootstrap: str,
    topic: str,
    done: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    within_seconds: float = 60.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """All records of `topic` from the beginning, read until `done(records)` or time runs out."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        deadline = time.monotonic() + 10
        while not partitions and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        deadline = time.monotonic() + within_seconds
        while not done(records) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            for batch in batches.values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records

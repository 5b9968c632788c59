"""Kafka through FastStream: broker factory, topic creation, batch consumers with a DLQ, and publishing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage

from hibiki_runtime.events import DecodedEvent, InvalidEvent, decode_event, dlq_topic
from hibiki_runtime.logging import log_context, trace_id_of
from hibiki_runtime.metrics import RuntimeMetrics
from hibiki_runtime.outbox import OutboundRecord

log = logging.getLogger("hibiki.kafka")


def create_broker(bootstrap_servers: str, client_id: str) -> KafkaBroker:
    """A FastStream broker tuned for batch pipelines; per-message logs stay below INFO."""
    return KafkaBroker(
        bootstrap_servers,
        client_id=client_id,
        acks="all",
        linger_ms=2,
        max_batch_size=1024 * 1024,
        logger=logging.getLogger("hibiki.faststream"),  # our JSON handler, not FastStream's own
        log_level=logging.DEBUG,
        graceful_timeout=15.0,
    )


async def ensure_topics(bootstrap_servers: str, topics: Iterable[str], partitions: int) -> list[str]:
    """Create the topics that do not exist yet; returns the ones created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="hibiki-topics")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in topics if name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another replica created it first
                await admin.create_topics(
                    [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in missing]
                )
        return missing
    finally:
        await admin.close()


@dataclass(frozen=True)
class Delivery:
    """One valid record of a consumed batch."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    event: DecodedEvent


@dataclass(frozen=True)
class Rejection:
    """A record the handler refuses for good (e.g. cross-tenant); it goes to the DLQ with the reason."""

    delivery: Delivery
    reason: str
    detail: str


def event_log_context(delivery: Delivery) -> AbstractContextManager[None]:
    """Log fields of one consumed event (its key is the call or request id); use around its handling."""
    envelope = delivery.event.envelope
    return log_context(
        event_id=envelope.event_id,
        tenant_id=envelope.tenant_id,
        trace_id=trace_id_of(envelope.traceparent),
        key=(delivery.key or b"").decode("utf-8", "replace"),
    )


BatchHandler = Callable[[Sequence[Delivery]], Awaitable[Sequence[Rejection]]]


@dataclass(frozen=True)
class _DeadLetter:
    record: ConsumerRecord[Any, Any]
    reason: str
    detail: str


async def publish_records(broker: KafkaBroker, records: Sequence[OutboundRecord]) -> None:
    """Send records with their own keys in one go, then wait until the broker acknowledged all of them."""
    futures = [
        await broker.publish(
            record.value, record.topic, key=record.key, headers=record.headers, no_confirm=True
        )
        for record in records
    ]
    await asyncio.gather(*futures)


def _dead_letter_record(dead: _DeadLetter, group: str) -> OutboundRecord:
    record = dead.record
    headers = {name: value.decode("utf-8", "replace") for name, value in record.headers or ()}
    headers.update(
        {
            "dlq-reason": dead.reason,
            "dlq-detail": dead.detail[:1000],
            "dlq-source-topic": record.topic,
            "dlq-source-partition": str(record.partition),
            "dlq-source-offset": str(record.offset),
            "dlq-consumer-group": group,
        }
    )
    return OutboundRecord(dlq_topic(record.topic), record.key, record.value or b"", headers)


async def _raw_records(message: StreamMessage[Any]) -> Any:
    # Decoding happens in the handler so that a bad record reaches the DLQ instead of being skipped.
    return message.raw_message


def register_batch_consumer(
    broker: KafkaBroker,
    *,
    topics: Sequence[str],
    group: str,
    handler: BatchHandler,
    metrics: RuntimeMetrics,
    max_records: int = 500,
    fetch_max_wait_ms: int = 25,
    max_backoff_seconds: float = 30.0,
) -> None:
    """Consume `topics` in batches; commit only after the handler (and its DB commit) and the DLQ succeeded.

    One subscriber serves all the topics, so the group is joined once. Invalid records and the handler's
    rejections go to `<topic>.dlq` with a reason header. If the handler raises, the batch is sought back and
    redelivered after a growing pause; nothing is committed past it.
    """
    failures = 0

    @broker.subscriber(
        *topics,
        group_id=group,
        batch=True,
        max_records=max_records,
        # A caller waits on each decision: the broker may hold an empty fetch this long (Kafka: 500).
        fetch_max_wait_ms=fetch_max_wait_ms,
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        decoder=_raw_records,
    )
    async def consume(records: Any, message: KafkaMessage) -> None:
        nonlocal failures
        started = time.perf_counter()
        deliveries: list[Delivery] = []
        dead: list[_DeadLetter] = []
        by_position: dict[tuple[str, int, int], ConsumerRecord[Any, Any]] = {}
        for record in records:
            try:
                event = decode_event(record.topic, record.value)
            except InvalidEvent as error:
                dead.append(_DeadLetter(record, error.reason, error.detail))
                continue
            deliveries.append(Delivery(record.topic, record.partition, record.offset, record.key, event))
            by_position[(record.topic, record.partition, record.offset)] = record
        batch_topics = sorted({record.topic for record in records})
        try:
            with log_context(topics=",".join(batch_topics), batch_size=str(len(records))):
                rejections = await handler(deliveries) if deliveries else ()
            dead.extend(
                _DeadLetter(
                    by_position[(r.delivery.topic, r.delivery.partition, r.delivery.offset)],
                    r.reason,
                    r.detail,
                )
                for r in rejections
            )
            if dead:
                await publish_records(broker, [_dead_letter_record(d, group) for d in dead])
        except Exception:
            failures += 1
            for topic in batch_topics:
                metrics.consumer_errors.labels(topic).inc()
            pause = min(max_backoff_seconds, 0.2 * 2 ** min(failures, 10))
            log.exception(
                "batch of %d records from %s failed; redelivering in %.1fs",
                len(records),
                ", ".join(batch_topics),
                pause,
            )
            await message.nack()
            await asyncio.sleep(pause)
            return
        failures = 0
        await message.ack()
        elapsed = time.perf_counter() - started
        dead_by_topic = Counter(d.record.topic for d in dead)
        for d in dead:
            metrics.dlq.labels(d.record.topic, d.reason).inc()
            log.warning(
                "record %s[%d]@%d sent to %s: %s (%s)",
                d.record.topic,
                d.record.partition,
                d.record.offset,
                dlq_topic(d.record.topic),
                d.reason,
                d.detail,
            )
        for topic, count in Counter(record.topic for record in records).items():
            metrics.consumed.labels(topic, "processed").inc(count - dead_by_topic[topic])
            if dead_by_topic[topic]:
                metrics.consumed.labels(topic, "dead_lettered").inc(dead_by_topic[topic])
            metrics.batch_latency.labels(topic).observe(elapsed)


async def record_consumer_lag(broker: KafkaBroker, metrics: RuntimeMetrics) -> None:
    """Set the lag gauge (end offset − committed offset) of every assigned partition.

    Uses the high-water marks the consumers already learned from fetches, so it costs one committed-offset
    request per partition and no extra connection. Partitions no longer assigned here lose their series.
    """
    lags: dict[tuple[str, int], int] = {}
    for subscriber in broker.subscribers:
        consumer = getattr(subscriber, "consumer", None)
        if consumer is None:
            continue
        for partition in consumer.assignment():
            end = consumer.highwater(partition)
            if end is None:
                continue
            committed = await consumer.committed(partition) or 0
            lags[(partition.topic, partition.partition)] = max(0, end - committed)
    metrics.set_consumer_lag(lags)

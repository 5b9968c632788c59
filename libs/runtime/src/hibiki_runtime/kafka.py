"""Kafka through FastStream: broker factory, topic creation, batch consumers with a DLQ, and publishing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage

from hibiki_runtime.consumer import (
    BatchHandler,
    ConsumerEdge,
    ConsumerProgress,
    DeadLetter,
    dead_letter_record,
    process_batch,
)
from hibiki_runtime.events import dlq_topic
from hibiki_runtime.logging import log_context
from hibiki_runtime.metrics import RuntimeMetrics
from hibiki_runtime.outbox import OutboundRecord

log = logging.getLogger("hibiki.kafka")
C = TypeVar("C")


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


async def start_group_at_end(bootstrap_servers: str, group: str, topics: Iterable[str]) -> dict[str, int]:
    """Commit the current end of `topics` for a consumer group that has no committed offsets yet, so that
    it reads only what is written from now on — deterministically, unlike `auto_offset_reset="latest"`,
    which resolves the end only after the group has joined (a record written meanwhile would be skipped).
    A group that has committed before keeps its offsets. Returns the offsets committed, by "topic:partition".
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=group, enable_auto_commit=False, client_id=group
    )
    await consumer.start()
    try:
        await consumer.topics()  # metadata of every topic, those created a moment ago included
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return {}
        consumer.assign(partitions)
        fresh = [tp for tp in partitions if await consumer.committed(tp) is None]
        if not fresh:
            return {}
        ends = await consumer.end_offsets(fresh)
        await consumer.commit({tp: ends[tp] for tp in fresh})
        return {f"{tp.topic}:{tp.partition}": ends[tp] for tp in fresh}
    finally:
        await consumer.stop()


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


async def publish_records(broker: KafkaBroker, records: Sequence[OutboundRecord]) -> None:
    """Send records with their own keys in one go, then wait until the broker acknowledged all of them."""
    futures = [
        await broker.publish(
            record.value, record.topic, key=record.key, headers=record.headers, no_confirm=True
        )
        for record in records
    ]
    await asyncio.gather(*futures)


class PartitionAssignment:
    """The partitions this process consumes per topic, and how many each topic has; listeners hear changes.

    A service that must divide something among its replicas (e.g. a carrier's contracted rate) takes its
    share by the partitions it owns: the records are spread over partitions by key, so that share follows
    its part of the traffic, and it is recomputed at every rebalance.
    """

    def __init__(self) -> None:
        self.owned: dict[str, set[int]] = {}
        self.partitions: dict[str, int] = {}
        self._listeners: list[Callable[[PartitionAssignment], None]] = []

    def listen(self, listener: Callable[[PartitionAssignment], None]) -> None:
        self._listeners.append(listener)

    def share(self, topic: str) -> float:
        """The fraction of `topic`'s partitions owned here; 1.0 until the first assignment is known, and
        never below one partition's worth (a replica left without partitions still finishes its work)."""
        total = self.partitions.get(topic, 0)
        if total <= 0:
            return 1.0
        return max(1, len(self.owned.get(topic, ()))) / total

    def assigned(self, partitions: Iterable[TopicPartition], totals: dict[str, int]) -> None:
        owned: dict[str, set[int]] = {}
        for partition in partitions:
            owned.setdefault(partition.topic, set()).add(partition.partition)
        self.owned, self.partitions = owned, {**self.partitions, **totals}
        for listener in self._listeners:
            listener(self)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Keeps the assignment and the progress watch in step with the group's rebalances."""

    def __init__(
        self, assignment: PartitionAssignment, progress: ConsumerProgress, topics: Sequence[str]
    ) -> None:
        self._assignment = assignment
        self._progress = progress
        self._topics = topics
        self.subscriber: Any = None  # its `consumer` exists once the subscriber started

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._progress.forget((tp.topic, tp.partition) for tp in revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        totals = {}
        consumer = getattr(self.subscriber, "consumer", None)
        for topic in self._topics:
            known = consumer.partitions_for_topic(topic) if consumer is not None else None
            if known:
                totals[topic] = len(known)
        self._assignment.assigned(assigned, totals)
        log.info(
            "consuming %s", ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(assigned)) or "nothing"
        )


async def _raw_records(message: StreamMessage[Any]) -> Any:
    # Decoding happens at the consumer edge so that a bad record reaches the DLQ instead of being skipped.
    return message.raw_message


def register_batch_consumer(
    broker: KafkaBroker,
    *,
    edge: ConsumerEdge[C],
    group: str,
    handler: BatchHandler[C],
    metrics: RuntimeMetrics,
    progress: ConsumerProgress,
    assignment: PartitionAssignment | None = None,
    max_records: int = 500,
    fetch_max_wait_ms: int = 25,
    max_backoff_seconds: float = 30.0,
    dlq_max_bytes: int = 1_000_000,
) -> None:
    """Consume the edge's topics in batches; commit only after the handler (and its DB commit) and the DLQ.

    One subscriber serves all the topics, so the group is joined once. Records the edge refuses, items the
    handler rejects and records it fails on go to `<topic>.dlq` with a reason header (see
    consumer.process_batch); the rest of the batch is handled and committed. Only an infrastructure failure
    (broker or database unreachable) seeks the batch back and redelivers it after a growing pause.
    """
    failures = 0
    rebalance = _Rebalance(assignment or PartitionAssignment(), progress, edge.topics)

    @broker.subscriber(
        *edge.topics,
        group_id=group,
        listener=rebalance,
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
        partitions = {(record.topic, record.partition) for record in records}
        progress.received(partitions)
        batch_topics = sorted({topic for topic, _ in partitions})
        try:
            with log_context(topics=",".join(batch_topics), batch_size=str(len(records))):
                outcome = await process_batch(records, edge, handler)
            if outcome.dead:
                await publish_records(
                    broker, [dead_letter_record(d, group, dlq_max_bytes) for d in outcome.dead]
                )
        except Exception:
            failures += 1
            for topic in batch_topics:
                metrics.consumer_errors.labels(topic).inc()
            pause = min(max_backoff_seconds, 0.2 * 2 ** min(failures, 10))
            log.exception(
                "batch of %d records from %s failed (broker or database); redelivering in %.1fs",
                len(records),
                ", ".join(batch_topics),
                pause,
            )
            await message.nack()
            await asyncio.sleep(pause)
            return
        failures = 0
        await message.ack()
        progress.committed(partitions)
        _count(metrics, records, outcome.dead, time.perf_counter() - started)

    rebalance.subscriber = broker.subscribers[-1]


def _count(
    metrics: RuntimeMetrics, records: Sequence[Any], dead: Sequence[DeadLetter], elapsed: float
) -> None:
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


async def record_consumer_lag(broker: KafkaBroker, metrics: RuntimeMetrics) -> dict[tuple[str, int], int]:
    """Set (and return) the lag gauge (end offset − committed offset) of every assigned partition.

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
    return lags

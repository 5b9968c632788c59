"""Load generation and observation on the broker: batched producing, paced producing, timed reading, and the
raw aiokafka pass-through that every pipeline is compared with."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

# (key, value, headers) of one record to produce.
Outgoing = tuple[bytes, bytes, Sequence[tuple[str, bytes]]]
# Identifies a record the benchmark is waiting for, or None for records of no interest.
Matcher = Callable[[ConsumerRecord[bytes, bytes]], Hashable | None]


@asynccontextmanager
async def producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer; small lingering lets a burst share record batches (reading many single-record
    batches is slow on the local broker)."""
    client = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, max_batch_size=256 * 1024)
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


async def send_all(client: AIOKafkaProducer, topic: str, records: Iterable[Outgoing]) -> int:
    """Produce records without awaiting each acknowledgement, then wait for all of them; returns the count."""
    futures = [
        await client.send(topic, value, key=key, headers=list(headers)) for key, value, headers in records
    ]
    await asyncio.gather(*futures)
    return len(futures)


async def paced(send: Callable[[int], Awaitable[None]], per_second: float, count: int) -> None:
    """Call send(0 … count-1) at a fixed offered rate (in 5 ms ticks), whatever the system's answers."""
    started = time.perf_counter()
    sent = 0
    while sent < count:
        due = min(count, int((time.perf_counter() - started) * per_second) + 1)
        while sent < due:
            await send(sent)
            sent += 1
        await asyncio.sleep(0.005)


async def _assigned_consumer(bootstrap: str, topic: str, from_end: bool) -> AIOKafkaConsumer:
    # assign() and no group: no join delay on the local broker. A short fetch wait, so that the observer
    # adds little to the latencies it measures (the broker may hold a fetch that long when nothing is new).
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=2000, fetch_max_wait_ms=5
    )
    await consumer.start()
    partitions = consumer.partitions_for_topic(topic) or set()
    deadline = time.monotonic() + 10
    while not partitions and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic) or set()
    if not partitions:
        await consumer.stop()
        raise RuntimeError(f"topic {topic} has no partitions")
    assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(assigned)
    if from_end:
        await consumer.seek_to_end(*assigned)
        for partition in assigned:  # resolve the position now, before anything is produced
            await consumer.position(partition)
    else:
        await consumer.seek_to_beginning(*assigned)
    return consumer


class TopicWatcher:
    """Reads a topic in the background and notes when each awaited record arrived (perf_counter seconds).

    It starts at the end of the topic; the local broker reports the end a little early, so a few older
    records may be read again — `match` must recognise only the records of the current measurement.
    """

    def __init__(self, bootstrap: str, topic: str, match: Matcher) -> None:
        self._bootstrap, self._topic, self._match = bootstrap, topic, match
        self.arrivals: dict[Hashable, float] = {}
        self.records: dict[Hashable, ConsumerRecord[bytes, bytes]] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> TopicWatcher:
        consumer = await _assigned_consumer(self._bootstrap, self._topic, from_end=True)
        self._task = asyncio.create_task(self._read(consumer))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=200)
                now = time.perf_counter()
                for batch in batches.values():
                    for record in batch:
                        key = self._match(record)
                        if key is not None and key not in self.arrivals:
                            self.arrivals[key] = now
                            self.records[key] = record
                if batches:
                    self._changed.set()
        finally:
            await consumer.stop()

    async def wait_for(self, keys: set[Hashable] | int, within: float) -> float:
        """Wait until every key (or that many keys) arrived; returns the arrival time of the last one.

        TimeoutError names how many are missing, so a stalled pipeline fails the run instead of hanging it.
        """
        deadline = time.monotonic() + within
        while True:
            missing = len(keys - self.arrivals.keys()) if isinstance(keys, set) else keys - len(self.arrivals)
            if missing <= 0:
                wanted = keys if isinstance(keys, set) else self.arrivals.keys()
                return max(self.arrivals[k] for k in wanted)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{missing} records still missing on {self._topic} after {within:.0f}s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 1.0))


async def pass_through(
    bootstrap: str, source: str, target: str, count: int | None, started: asyncio.Event | None = None
) -> float:
    """The raw limit: consume `source` in batches and produce each record to `target`, acknowledgements
    gathered per batch (no decoding, no database). Forwards `count` records from the beginning and returns
    the seconds it took, or, with count None, forwards from the end until cancelled."""
    consumer = await _assigned_consumer(bootstrap, source, from_end=count is None)
    try:
        async with producer(bootstrap) as client:
            if started is not None:
                started.set()
            forwarded = 0
            began = time.perf_counter()
            while count is None or forwarded < count:
                batches = await consumer.getmany(timeout_ms=100, max_records=1000)
                futures: list[Any] = []
                for batch in batches.values():
                    for record in batch:
                        futures.append(
                            await client.send(
                                target, record.value, key=record.key, headers=list(record.headers)
                            )
                        )
                await asyncio.gather(*futures)
                forwarded += len(futures)
            return time.perf_counter() - began
    finally:
        await consumer.stop()

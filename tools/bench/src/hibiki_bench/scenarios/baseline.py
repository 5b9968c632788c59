"""The broker's practical limit here: raw aiokafka consume → produce of records the size of a call event."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Hashable

from aiokafka import ConsumerRecord
from hibiki_runtime.kafka import ensure_topics

from hibiki_bench.events import call_started
from hibiki_bench.kafka_load import TopicWatcher, pass_through, producer, send_all
from hibiki_bench.latency import LatencyProfile, measure_latency

RAW_IN, RAW_OUT = "bench.raw.in", "bench.raw.out"
PROBE_IN, PROBE_OUT = "bench.probe.in", "bench.probe.out"
BENCH_TOPICS = (RAW_IN, RAW_OUT, PROBE_IN, PROBE_OUT)


async def create_topics(bootstrap: str) -> None:
    """The pass-through topics, with as many partitions as the services' topics."""
    await ensure_topics(bootstrap, BENCH_TOPICS, partitions=3)


async def raw_pass_through_rate(bootstrap: str, messages: int) -> float:
    """Records per second forwarded by the raw pass-through (same record size as a CallStarted)."""
    async with producer(bootstrap) as client:
        await send_all(
            client,
            RAW_IN,
            (call_started(f"raw-{i}", "+81355559999", "+819011112222") for i in range(messages)),
        )
    seconds = await pass_through(bootstrap, RAW_IN, RAW_OUT, messages)
    return messages / seconds


async def raw_latency(bootstrap: str, per_second: float, count: int, run_id: str) -> LatencyProfile:
    """Produce → raw pass-through → consume latency at `per_second`, the floor under a decision latency."""

    def match(record: ConsumerRecord[bytes, bytes]) -> Hashable | None:
        key = record.key.decode() if record.key else ""
        return key if key.startswith(run_id) else None

    started = asyncio.Event()
    forwarder = asyncio.create_task(pass_through(bootstrap, PROBE_IN, PROBE_OUT, None, started))
    try:
        await started.wait()
        async with producer(bootstrap) as client, TopicWatcher(bootstrap, PROBE_OUT, match) as watcher:

            async def send(index: int) -> Hashable:
                key, value, headers = call_started(f"{run_id}{index}", "+81355559999", "+819011112222")
                await client.send(PROBE_IN, value, key=key, headers=list(headers))
                return key.decode()

            return await measure_latency(send, watcher, per_second, count, warmup=int(per_second * 0.5))
    finally:
        forwarder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await forwarder

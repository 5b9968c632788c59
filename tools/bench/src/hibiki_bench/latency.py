"""Latency at a fixed offered load: produce at a steady rate, time each answer as it is read back."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from hibiki_bench.kafka_load import TopicWatcher, paced
from hibiki_bench.stats import percentile

Key = TypeVar("Key", bound=Hashable)


@dataclass(frozen=True)
class LatencyProfile:
    p50_ms: float
    p95_ms: float
    p99_ms: float
    # (seconds since the first send, latency in ms) for the plot.
    series: list[tuple[float, float]]


def latency_profile(sent: Mapping[Key, float], arrived: Mapping[Key, float]) -> LatencyProfile:
    """Percentiles and the time series of arrival − send over the keys that were sent."""
    start = min(sent.values())
    pairs = sorted((sent[k] - start, (arrived[k] - sent[k]) * 1000) for k in sent)
    latencies = [ms for _, ms in pairs]
    return LatencyProfile(
        percentile(latencies, 0.50), percentile(latencies, 0.95), percentile(latencies, 0.99), pairs
    )


async def measure_latency(
    send: Callable[[int], Awaitable[Hashable]],
    watcher: TopicWatcher,
    per_second: float,
    count: int,
    within: float = 60.0,
    warmup: int = 0,
) -> LatencyProfile:
    """Offer `warmup` + `count` requests at `per_second`; `send(i)` produces request i and returns the key its
    answer will carry in `watcher`. The first `warmup` answers are awaited but not counted: they measure
    first-use costs (statement preparation, caches), not the steady state at that load."""
    sent: dict[Hashable, tuple[int, float]] = {}

    async def timed_send(index: int) -> None:
        began = time.perf_counter()
        sent[await send(index)] = (index, began)

    await paced(timed_send, per_second, warmup + count)
    await watcher.wait_for(set(sent), within)
    measured = {key: began for key, (index, began) in sent.items() if index >= warmup}
    return latency_profile(measured, watcher.arrivals)

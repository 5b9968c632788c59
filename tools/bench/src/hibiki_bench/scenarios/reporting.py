"""reporting: events applied per second, and how far it falls behind a burst and how fast it catches up."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp
from hibiki_runtime.events import CALL_EVENTS
from prometheus_client.parser import text_string_to_metric_families

from hibiki_bench.events import call_ended, call_started
from hibiki_bench.kafka_load import producer, send_all

DIALED = "+81355550202"
CONSUMED = "hibiki_reporting_consumer_messages_total"


def consumed_total(metrics_text: str) -> int:
    """Records the consumer has handled and committed (processed or dead-lettered), from /metrics text."""
    # By sample name: the parser may split one counter into several families when lines interleave.
    families = text_string_to_metric_families(metrics_text)
    return int(sum(s.value for family in families for s in family.samples if s.name == CONSUMED))


async def _consumed(session: aiohttp.ClientSession, http_port: int) -> int:
    async with session.get(f"http://127.0.0.1:{http_port}/metrics") as response:
        response.raise_for_status()
        return consumed_total(await response.text())


async def wait_until_idle(
    http_port: int, expect_events: bool, quiet_seconds: float = 3.0, within: float = 180.0
) -> int:
    """Wait until the consumer has handled what was already on its topics (its count stops moving).

    With `expect_events` (earlier phases produced traffic) a count still at 0 means it has not started yet.
    """
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + within
        last, since = await _consumed(session, http_port), time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            now = await _consumed(session, http_port)
            if now != last:
                last, since = now, time.monotonic()
            elif (last > 0 or not expect_events) and time.monotonic() - since >= quiet_seconds:
                return last
    raise TimeoutError(f"reporting still consuming after {within:.0f}s")


@dataclass(frozen=True)
class BurstMeasurements:
    applied_per_second: float
    lag_at_burst_end: int
    # None when the budget ran out first; `lag_at_budget_end` then says how far behind it still was.
    catch_up_seconds: float | None
    lag_at_budget_end: int
    # (seconds since the burst started, events produced but not yet applied)
    lag_series: list[tuple[float, float]]


async def burst(
    bootstrap: str, http_port: int, events: int, run_id: str, budget_seconds: float
) -> BurstMeasurements:
    """Produce `events` call events (CallStarted + CallEnded pairs) at once and follow the applied count
    until all are applied or `budget_seconds` have passed (so a slow consumer cannot stall the run)."""
    async with aiohttp.ClientSession() as session:
        before = await _consumed(session, http_port)
        produced = 0
        series: list[tuple[float, float]] = []

        async def follow() -> None:
            while True:
                applied = await _consumed(session, http_port) - before
                series.append((time.perf_counter() - began, max(0, produced - applied)))
                await asyncio.sleep(0.25)

        began = time.perf_counter()
        follower = asyncio.create_task(follow())
        try:
            async with producer(bootstrap) as client:
                chunk = 5_000  # produce in chunks so the lag curve shows the burst arriving
                for start in range(0, events, chunk):
                    calls = range(start // 2, min(events, start + chunk) // 2)
                    records = [
                        record
                        for i in calls
                        for record in (
                            call_started(f"{run_id}{i}", DIALED, f"+8190{i:08d}"),
                            call_ended(f"{run_id}{i}"),
                        )
                    ]
                    produced += await send_all(client, CALL_EVENTS, records)
            burst_end = time.perf_counter()
            lag_at_end = produced - (await _consumed(session, http_port) - before)
            deadline = began + budget_seconds
            applied = await _consumed(session, http_port) - before
            while applied < produced and time.perf_counter() < deadline:
                await asyncio.sleep(0.1)
                applied = await _consumed(session, http_port) - before
            done = time.perf_counter()
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
    series.append((done - began, produced - applied))
    caught_up = done - burst_end if applied >= produced else None
    return BurstMeasurements(applied / (done - began), lag_at_end, caught_up, produced - applied, series)

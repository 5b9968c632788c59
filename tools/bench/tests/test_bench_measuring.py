"""What the benchmark reads from processes: their memory, their metrics, their profiles."""

from __future__ import annotations

import cProfile
import os
import time
from collections.abc import Hashable
from pathlib import Path

from hibiki_bench.latency import measure_latency
from hibiki_bench.memory import PeakRssSampler
from hibiki_bench.profiling import profiled, summarise
from hibiki_bench.scenarios.reporting import consumed_total
from hibiki_devstack.stack import ServiceSpec

METRICS = """\
# HELP hibiki_reporting_consumer_messages_total Messages consumed
# TYPE hibiki_reporting_consumer_messages_total counter
hibiki_reporting_consumer_messages_total{outcome="processed",topic="call.events"} 1200.0
hibiki_reporting_consumer_messages_created{outcome="processed",topic="call.events"} 1.7e9
hibiki_reporting_consumer_messages_total{outcome="dead_lettered",topic="call.events"} 3.0
hibiki_reporting_consumer_messages_total{outcome="processed",topic="sms.results"} 40.0
# HELP hibiki_reporting_outbox_published_total Published
# TYPE hibiki_reporting_outbox_published_total counter
hibiki_reporting_outbox_published_total{topic="x"} 999.0
"""


def test_consumed_total_counts_every_handled_record_of_every_topic_and_nothing_else() -> None:
    assert consumed_total(METRICS) == 1243


def test_peak_rss_is_kept_after_memory_is_freed() -> None:
    with PeakRssSampler(interval=0.01) as sampler:
        sampler.watch("me", os.getpid())
        before = sampler.peaks()["me"]
        ballast = bytearray(64 * 1024 * 1024)
        ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page so it is resident
        sampler.sample()
        del ballast
        sampler.sample()
    assert sampler.peaks()["me"] >= before + 60 * 1024 * 1024


def test_a_profiled_service_runs_its_module_under_cprofile_with_the_same_ports(tmp_path: Path) -> None:
    spec = ServiceSpec("routing", "hibiki_routing", grpc_port=1, http_port=2, args=("--x",))
    wrapped = profiled(spec, tmp_path / "routing.prof")
    assert (wrapped.name, wrapped.grpc_port, wrapped.http_port) == ("routing", 1, 2)
    assert [wrapped.module, *wrapped.args] == [
        "cProfile", "-o", str(tmp_path / "routing.prof"), "-m", "hibiki_routing", "--x"
    ]  # fmt: skip


def busy_decision_loop() -> int:
    return sum(i * i for i in range(200_000))


def test_a_profile_summary_names_the_functions_that_took_the_time(tmp_path: Path) -> None:
    profile = cProfile.Profile()
    profile.runcall(busy_decision_loop)
    path = tmp_path / "svc.prof"
    profile.dump_stats(path)

    summary = summarise(path, limit=5)

    assert "by own time" in summary and "by cumulative time" in summary
    assert "busy_decision_loop" in summary


class AnswersAfter:
    """A stand-in for TopicWatcher: request i is answered `delays[i]` seconds after it was sent."""

    def __init__(self, delays: list[float]) -> None:
        self.delays = delays
        self.arrivals: dict[Hashable, float] = {}

    async def wait_for(self, keys: set[Hashable], within: float) -> float:
        return max(self.arrivals[key] for key in keys)


async def test_warmup_requests_are_offered_but_not_counted() -> None:
    watcher = AnswersAfter([0.5] * 10 + [0.002] * 90)  # first uses are slow

    async def send(index: int) -> Hashable:
        watcher.arrivals[index] = time.perf_counter() + watcher.delays[index]
        return index

    warm = await measure_latency(send, watcher, 10_000, 90, warmup=10)  # type: ignore[arg-type]
    cold = await measure_latency(send, watcher, 10_000, 100)  # type: ignore[arg-type]

    assert len(warm.series) == 90 and warm.p99_ms < 10
    assert len(cold.series) == 100 and cold.p99_ms > 400

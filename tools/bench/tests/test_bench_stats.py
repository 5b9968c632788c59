"""Percentiles, rates and the steady rate of a throttled flow."""

from __future__ import annotations

import pytest
from hibiki_bench.latency import latency_profile
from hibiki_bench.stats import percentile, rate, steady_rate


def test_nearest_rank_percentiles() -> None:
    samples = [float(n) for n in range(100, 0, -1)]  # 100 … 1, unordered on purpose
    assert (percentile(samples, 0.5), percentile(samples, 0.95), percentile(samples, 0.99)) == (50, 95, 99)
    assert percentile([7.0], 0.99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_rate_refuses_a_non_positive_duration() -> None:
    assert rate(500, 2.0) == 250
    with pytest.raises(ValueError):
        rate(1, 0.0)


def test_steady_rate_ignores_the_initial_burst_of_a_full_token_bucket() -> None:
    burst = [0.0] * 50  # a bucket of 50 starts full
    steady = [i / 50 for i in range(1, 501)]  # then refilled at exactly 50 per second for 10 s
    timestamps = burst + steady

    assert len(timestamps) / (timestamps[-1] - timestamps[0]) > 54  # what a naive average would claim
    assert steady_rate(timestamps, skip_seconds=1.0) == pytest.approx(50.0)


def test_steady_rate_needs_two_events_after_the_skipped_part() -> None:
    with pytest.raises(ValueError):
        steady_rate([0.0, 0.1, 0.2], skip_seconds=1.0)


def test_latency_profile_pairs_each_answer_with_its_request() -> None:
    sent = {"a": 10.0, "b": 10.5, "c": 11.0}
    arrived = {"a": 10.002, "b": 10.510, "c": 11.004, "other": 99.0}

    profile = latency_profile(sent, arrived)

    assert profile.p50_ms == pytest.approx(4.0)
    assert profile.p99_ms == pytest.approx(10.0)
    assert [round(t, 3) for t, _ in profile.series] == [0.0, 0.5, 1.0]

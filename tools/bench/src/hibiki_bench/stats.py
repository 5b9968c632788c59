"""Numbers from timestamps: percentiles, rates, and the steady rate after a limiter's initial burst."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (fraction in 0..1) of `samples`; ValueError when there are none."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def rate(count: int, seconds: float) -> float:
    """Events per second; ValueError for a non-positive duration (a clock problem, not a fast system)."""
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {seconds}")
    return count / seconds


def steady_rate(timestamps: Sequence[float], skip_seconds: float) -> float:
    """Events per second after the first `skip_seconds`, measured between the first and last event there.

    A token bucket starts full, so its first `capacity` events pass at once; the rate it enforces is the
    slope after that burst. ValueError when fewer than two events are left to measure a slope.
    """
    ordered = sorted(timestamps)
    if not ordered:
        raise ValueError("no events")
    steady = [t for t in ordered if t >= ordered[0] + skip_seconds]
    if len(steady) < 2 or steady[-1] == steady[0]:
        raise ValueError(f"fewer than two events after the first {skip_seconds}s")
    return (len(steady) - 1) / (steady[-1] - steady[0])

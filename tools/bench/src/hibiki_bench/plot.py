"""The latency-over-time picture of a run (PNG)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: write files only

import matplotlib.pyplot as plt

# A series is (seconds since its start, value) points.
Series = Sequence[tuple[float, float]]


def save_latency_plot(
    latencies_ms: Mapping[str, Series], lag: Mapping[str, Series], path: Path, title: str
) -> None:
    """Latency (ms) of each probe over time on top, consumer lag (events) over time below."""
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), constrained_layout=True)
    for label, points in latencies_ms.items():
        top.plot([t for t, _ in points], [v for _, v in points], ".", markersize=2, label=label)
    top.set(title=title, xlabel="seconds since the probe started", ylabel="latency (ms)", yscale="log")
    top.legend(loc="upper right")
    top.grid(True, which="both", alpha=0.3)
    for label, points in lag.items():
        bottom.plot([t for t, _ in points], [v for _, v in points], label=label)
    bottom.set(xlabel="seconds since the burst started", ylabel="events not yet applied")
    bottom.legend(loc="upper right")
    bottom.grid(True, alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)

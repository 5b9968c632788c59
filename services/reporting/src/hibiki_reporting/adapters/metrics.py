"""Domain metrics of the reporting service (no phone numbers or ids as labels)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge


class ReportingMetrics:
    def __init__(self, registry: CollectorRegistry, final_through_timestamp: Callable[[], float]) -> None:
        self._newest_event = math.nan
        self.retention_deleted = Counter(
            "hibiki_reporting_retention_deleted_rows_total",
            "Rows hard-deleted by the retention job",
            ["table"],
            registry=registry,
        )
        self.freshness = Gauge(
            "hibiki_reporting_freshness_seconds",
            "Age of the newest event applied to the report (NaN before the first one)",
            registry=registry,
        )
        self.freshness.set_function(lambda: time.time() - self._newest_event)
        self.final_through = Gauge(
            "hibiki_reporting_final_through_timestamp_seconds",
            "Start (00:00 Asia/Tokyo) of the last report day that is final",
            registry=registry,
        )
        self.final_through.set_function(final_through_timestamp)

    def applied(self, newest_event_timestamp: float) -> None:
        """Record that events up to this occurred-at time are in the report."""
        if math.isnan(self._newest_event) or newest_event_timestamp > self._newest_event:
            self._newest_event = newest_event_timestamp

"""Prometheus metrics the runtime records for every service (RED for gRPC, consumer, DLQ, outbox)."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RuntimeMetrics:
    """Metrics shared by all services, named hibiki_<service>_…; labels are bounded (never ids or numbers)."""

    def __init__(self, service: str, registry: CollectorRegistry) -> None:
        prefix = f"hibiki_{service.replace('-', '_')}"
        self.registry = registry
        self.prefix = prefix
        self.build_info = Info(f"{prefix}_build", "Build information", registry=registry)
        self.grpc_requests = Counter(
            f"{prefix}_grpc_requests_total", "gRPC requests handled", ["method", "code"], registry=registry
        )
        self.grpc_latency = Histogram(
            f"{prefix}_grpc_request_duration_seconds",
            "gRPC request handling time",
            ["method"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.consumed = Counter(
            f"{prefix}_consumer_messages_total",
            "Kafka records consumed",
            ["topic", "result"],
            registry=registry,
        )
        self.batch_latency = Histogram(
            f"{prefix}_consumer_batch_duration_seconds",
            "Time to process one consumed batch",
            ["topic"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.consumer_errors = Counter(
            f"{prefix}_consumer_errors_total",
            "Batches that failed and will be redelivered",
            ["topic"],
            registry=registry,
        )
        self.dlq = Counter(
            f"{prefix}_dlq_messages_total",
            "Records sent to a dead-letter topic",
            ["topic", "reason"],
            registry=registry,
        )
        self.outbox_published = Counter(
            f"{prefix}_outbox_published_total",
            "Outbox records relayed to Kafka",
            ["topic"],
            registry=registry,
        )
        self.outbox_backlog = Gauge(
            f"{prefix}_outbox_backlog", "Outbox records waiting to be relayed (last seen)", registry=registry
        )
        self.outbox_relay_errors = Counter(
            f"{prefix}_outbox_relay_errors_total",
            "Relay attempts that failed (database or broker); the rows stay and are retried",
            registry=registry,
        )
        self.outbox_oldest_pending_age = Gauge(
            f"{prefix}_outbox_oldest_pending_age_seconds",
            "Age of the oldest outbox record this instance saw waiting (0 when it saw the outbox empty)",
            registry=registry,
        )
        self.consumer_lag = Gauge(
            f"{prefix}_consumer_lag_messages",
            "End offset minus committed offset",
            ["topic", "partition"],
            registry=registry,
        )
        self._lag_series: set[tuple[str, str]] = set()
        self.consumer_stalled = Gauge(
            f"{prefix}_consumer_stalled_seconds",
            "How long a partition's records have waited without a commit (only partitions stalled past the "
            "configured limit have a series; the service is NOT_SERVING while any has)",
            ["topic", "partition"],
            registry=registry,
        )
        self._stalled_series: set[tuple[str, str]] = set()

    def set_consumer_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        """Replace the lag series by these (topic, partition) values.

        Partitions missing from `lags` (rebalanced to another instance) lose their series: otherwise each
        instance would keep reporting the last lag it saw there, and max over instances would never go down.
        """
        current = {(topic, str(partition)): lag for (topic, partition), lag in lags.items()}
        for labels in self._lag_series - current.keys():
            self.consumer_lag.remove(*labels)
        for labels, lag in current.items():
            self.consumer_lag.labels(*labels).set(lag)
        self._lag_series = set(current)

    def set_consumer_stalled(self, stalled: Mapping[tuple[str, int], float]) -> None:
        """Replace the stalled-partition series by these (topic, partition) → seconds."""
        current = {(topic, str(partition)): seconds for (topic, partition), seconds in stalled.items()}
        for labels in self._stalled_series - current.keys():
            self.consumer_stalled.remove(*labels)
        for labels, seconds in current.items():
            self.consumer_stalled.labels(*labels).set(seconds)
        self._stalled_series = set(current)

"""Prometheus metrics the runtime records for every service (RED for gRPC, consumer, DLQ, outbox)."""

from __future__ import annotations

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
        self.consumer_lag = Gauge(
            f"{prefix}_consumer_lag_messages",
            "End offset minus committed offset",
            ["topic", "partition"],
            registry=registry,
        )

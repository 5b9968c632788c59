"""Domain metrics of the sms-gateway (labels are carriers, statuses and reasons: never numbers or ids)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_SUBMIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_RECEIPT_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 86400.0)
BREAKER_STATES = {"closed": 0, "half-opened": 1, "opened": 2}


class SmsMetrics:
    def __init__(self, registry: CollectorRegistry, prefix: str = "hibiki_sms_gateway") -> None:
        self.submits = Counter(
            f"{prefix}_submits_total", "submit_sm outcomes per part", ["carrier", "status"], registry=registry
        )
        self.segments = Counter(
            f"{prefix}_segments_total", "SMS parts accepted", ["carrier"], registry=registry
        )
        self.submit_latency = Histogram(
            f"{prefix}_submit_duration_seconds",
            "Time from submit_sm to its response",
            ["carrier"],
            buckets=_SUBMIT_BUCKETS,
            registry=registry,
        )
        self.receipt_latency = Histogram(
            f"{prefix}_receipt_delay_seconds",
            "Time from acceptance to the final delivery receipt",
            ["carrier", "state"],
            buckets=_RECEIPT_BUCKETS,
            registry=registry,
        )
        self.retries = Counter(
            f"{prefix}_submit_retries_total",
            "Submits retried after a temporary error",
            ["carrier", "code"],
            registry=registry,
        )
        self.throttles = Counter(
            f"{prefix}_throttled_total", "ESME_RTHROTTLED answers", ["carrier"], registry=registry
        )
        self.breaker_state = Gauge(
            f"{prefix}_circuit_breaker_state",
            "Circuit breaker per connector: 0 closed, 1 half-open, 2 open",
            ["connector"],
            registry=registry,
        )
        self.uncertain = Counter(
            f"{prefix}_uncertain_submissions_total",
            "Submissions whose outcome is unknown (never resent automatically)",
            ["cause"],
            registry=registry,
        )
        self.link_opens = Counter(
            f"{prefix}_short_link_opens_total",
            "Requests for short links: counted clicks, previews (bots, HEAD) and unknown or expired links",
            ["kind"],
            registry=registry,
        )
        self.results = Counter(
            f"{prefix}_results_total",
            "Results produced to sms.results",
            ["kind", "reason"],
            registry=registry,
        )

"""Domain metrics of the sms-gateway (labels are carriers, statuses and reasons: never numbers or ids)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_SUBMIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_RECEIPT_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 86400.0)
_LOOKUP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
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
        self.receipts_stored = Counter(
            f"{prefix}_receipts_stored_total",
            "Delivery receipts stored (each then acknowledged to the SMSC)",
            registry=registry,
        )
        self.receipts_reconciled = Counter(
            f"{prefix}_receipts_reconciled_total",
            "Receipts whose part a crash lost, matched to their message by recipient and time",
            registry=registry,
        )
        self.taken_over = Counter(
            f"{prefix}_messages_taken_over_total",
            "Queued messages of a stopped sms-gateway process taken over (and sent) by this one",
            registry=registry,
        )
        self.outcomes_unrecorded = Counter(
            f"{prefix}_outcomes_unrecorded_total",
            "Send outcomes whose recording failed (kept and retried until recorded)",
            registry=registry,
        )
        # Number-portability lookup (HIBIKI_SMS_MNP_URL): where each carrier answer came from (answered,
        # unsupported, cached, coalesced, fallback), why lookups failed, and how long the HTTP lookups took.
        self.carrier_lookups = Counter(
            f"{prefix}_carrier_lookups_total",
            "Carrier resolutions by the number-portability lookup, by where the answer came from",
            ["result"],
            registry=registry,
        )
        self.carrier_lookup_errors = Counter(
            f"{prefix}_carrier_lookup_errors_total",
            "Number-portability lookups that failed (answered by the static table instead)",
            ["cause"],
            registry=registry,
        )
        self.carrier_lookup_latency = Histogram(
            f"{prefix}_carrier_lookup_duration_seconds",
            "Duration of number-portability HTTP lookups (failed ones included)",
            buckets=_LOOKUP_BUCKETS,
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
        self.retention_deleted = Counter(
            f"{prefix}_retention_deleted_rows_total",
            "Rows hard-deleted by the retention job",
            ["table"],
            registry=registry,
        )
        self.retention_completed = Gauge(
            f"{prefix}_retention_last_completed_timestamp_seconds",
            "Unix time the last retention run completed (0 before the first)",
            registry=registry,
        )

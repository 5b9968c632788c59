"""Domain metrics of routing (labels are bounded outcomes, never call ids, routes or numbers)."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from hibiki_routing.domain.calls import Decision, Outcome, SendSms

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_INPUT_ERRORS = {
    Outcome.REPROMPT_INVALID: ("invalid", "reprompt"),
    Outcome.FALLBACK_INVALID: ("invalid", "fallback"),
    Outcome.REPROMPT_TIMEOUT: ("timeout", "reprompt"),
    Outcome.FALLBACK_TIMEOUT: ("timeout", "fallback"),
}


class RoutingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions = Counter(
            "hibiki_routing_decisions_total", "Call decisions by outcome", ["outcome"], registry=registry
        )
        self.decision_latency = Histogram(
            "hibiki_routing_decision_latency_seconds",
            "From the call event's occurred_at to its actions being queued",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.input_errors = Counter(
            "hibiki_routing_input_errors_total",
            "Invalid inputs and input timeouts, by what followed",
            ["kind", "outcome"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "hibiki_routing_fallbacks_total", "Calls sent to a route's fallback", ["cause"], registry=registry
        )
        self.sms_requests = Counter(
            "hibiki_routing_sms_requests_total", "SMS requests queued for sms-gateway", registry=registry
        )
        self.calls_in_progress = Gauge(
            "hibiki_routing_calls_in_progress",
            "Calls started and not ended (from the database)",
            registry=registry,
        )

    def record(self, decision: Decision, occurred_at: datetime | None, queued_at: datetime) -> None:
        """Count a committed decision."""
        self.decisions.labels(decision.outcome.value).inc()
        if decision.outcome in _INPUT_ERRORS:
            kind, outcome = _INPUT_ERRORS[decision.outcome]
            self.input_errors.labels(kind, outcome).inc()
            if outcome == "fallback":
                self.fallbacks.labels(kind).inc()
        sms = sum(isinstance(output, SendSms) for output in decision.outputs)
        if sms:
            self.sms_requests.inc(sms)
        if occurred_at is not None and decision.steps:
            self.decision_latency.observe(max(0.0, (queued_at - occurred_at).total_seconds()))

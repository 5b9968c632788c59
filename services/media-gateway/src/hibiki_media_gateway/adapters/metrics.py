"""Domain metrics of media-gateway (labels are outcomes, kinds and reasons: never numbers or ids)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_FETCH_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class MediaMetrics:
    def __init__(self, registry: CollectorRegistry, prefix: str = "hibiki_media_gateway") -> None:
        self.calls = Counter(
            f"{prefix}_calls_total",
            "INVITEs by what became of them (answered, unknown_number, busy, not_ready, failed)",
            ["result"],
            registry=registry,
        )
        self.calls_active = Gauge(f"{prefix}_calls_active", "Calls in progress", registry=registry)
        self.call_events = Counter(
            f"{prefix}_call_events_total", "call.events written, by kind", ["kind"], registry=registry
        )
        self.calls_ended = Counter(
            f"{prefix}_calls_ended_total", "Calls ended, by reason", ["reason"], registry=registry
        )
        self.keys = Counter(f"{prefix}_dtmf_keys_total", "DTMF keys heard", registry=registry)
        self.prompts_missing = Counter(
            f"{prefix}_prompts_without_audio_total",
            "Prompts skipped: no audio id, or guidance-tts had none and no copy was cached",
            registry=registry,
        )
        self.audio_fetch = Histogram(
            f"{prefix}_prompt_audio_seconds",
            "Time to have a prompt's audio on disk (cached: near zero)",
            buckets=_FETCH_BUCKETS,
            registry=registry,
        )
        self.event_write_failures = Counter(
            f"{prefix}_event_write_failures_total",
            "Failed commits of call events (retried until they succeed)",
            registry=registry,
        )
        self.lost_calls = Counter(
            f"{prefix}_lost_calls_total",
            "Calls of stopped processes reported ended with platform_failure",
            registry=registry,
        )

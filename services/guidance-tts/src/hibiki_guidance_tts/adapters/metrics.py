"""Domain metrics of guidance-tts, on the runtime's registry (labels bounded: no ids, no texts)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_SYNTHESIS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


class GuidanceMetrics:
    def __init__(self, registry: CollectorRegistry, prefix: str = "hibiki_guidance_tts") -> None:
        self.synthesis_seconds = Histogram(
            f"{prefix}_synthesis_duration_seconds",
            "Time to synthesize and encode one text, queueing excluded",
            buckets=_SYNTHESIS_BUCKETS,
            registry=registry,
        )
        self.cache_lookups = Counter(
            f"{prefix}_audio_cache_lookups_total",
            "Lookups of stored audio by text and voice (result: hit or miss)",
            ["result"],
            registry=registry,
        )
        self.wav_cache_lookups = Counter(
            f"{prefix}_wav_cache_lookups_total",
            "Audio fetches served from the in-process WAV cache or read from the database (hit or miss)",
            ["result"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            f"{prefix}_synthesis_queue_depth",
            "Synthesis requests admitted and not finished (running plus waiting)",
            registry=registry,
        )
        self.rejected = Counter(
            f"{prefix}_synthesis_rejected_total",
            "Synthesis requests refused with RESOURCE_EXHAUSTED because the queue was full",
            registry=registry,
        )
        self.bytes_served = Counter(
            f"{prefix}_audio_served_bytes_total",
            "Audio bytes sent to clients (channel: grpc_stream, http, preview)",
            ["channel", "format"],
            registry=registry,
        )

"""How much load a run offers: `--quick` (under 2 minutes) or the full run (under 10 minutes)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    raw_messages: int
    routing_calls: int
    latency_seconds: float
    sms_messages: int
    sms_crash_burst: int
    throttle_per_second: int
    throttle_seconds: float
    reporting_burst: int
    reporting_budget_seconds: float
    tts_texts: int
    audio_fetches: int
    # media-gateway: a burst of calls offered at a fixed rate, then N calls held at once (each step also with
    # the bare answerer), then key presses on 4 calls (the most one PJSIP process holds).
    media_burst_calls: int
    media_burst_per_second: float
    media_hold_steps: tuple[int, ...]
    media_listen_seconds: float
    media_dtmf_presses: int  # per call


QUICK = Plan(
    raw_messages=20_000,
    routing_calls=1_500,
    latency_seconds=4,
    sms_messages=300,
    sms_crash_burst=600,
    throttle_per_second=40,
    throttle_seconds=4,
    reporting_burst=4_000,
    reporting_budget_seconds=30,
    tts_texts=2,
    audio_fetches=200,
    media_burst_calls=100,
    media_burst_per_second=40,
    media_hold_steps=(4, 8),
    media_listen_seconds=3,
    media_dtmf_presses=5,
)
FULL = Plan(
    raw_messages=100_000,
    routing_calls=20_000,
    latency_seconds=15,
    sms_messages=5_000,
    sms_crash_burst=3_000,
    throttle_per_second=50,
    throttle_seconds=10,
    reporting_burst=100_000,
    reporting_budget_seconds=300,
    tts_texts=6,
    audio_fetches=1_000,
    media_burst_calls=300,
    media_burst_per_second=40,
    media_hold_steps=(1, 2, 4, 8),
    media_listen_seconds=8,
    media_dtmf_presses=25,
)

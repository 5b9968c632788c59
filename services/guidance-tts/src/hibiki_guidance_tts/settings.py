"""Settings of the guidance-tts service (HIBIKI_* environment variables)."""

from __future__ import annotations

from hibiki_runtime.settings import ServiceSettings
from pydantic import Field


class GuidanceTtsSettings(ServiceSettings):
    service_name: str = "guidance-tts"
    grpc_port: int = 50051
    http_port: int = 9101
    # Worker processes running Open JTalk (each uses one core while synthesizing).
    synthesis_workers: int = Field(default=2, ge=1)
    # Requests that may wait for a worker; beyond that RESOURCE_EXHAUSTED.
    synthesis_queue: int = Field(default=16, ge=0)
    # Voice of every synthesis; changing it makes new texts sound different (the cache key includes it).
    voice_speed: float = Field(default=1.0, ge=0.5, le=2.0)
    voice_half_tone: float = Field(default=0.0, ge=-12.0, le=12.0)
    # Recently fetched WAVs kept in memory (players fetch the same guidances over and over); 0 turns it off.
    wav_cache_mb: int = Field(default=16, ge=0, le=1024)

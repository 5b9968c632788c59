"""Settings of the guidance-tts service (HIBIKI_* environment variables)."""

from __future__ import annotations

from hibiki_runtime.settings import ServiceSettings


class GuidanceTtsSettings(ServiceSettings):
    service_name: str = "guidance-tts"
    grpc_port: int = 50051
    http_port: int = 9101

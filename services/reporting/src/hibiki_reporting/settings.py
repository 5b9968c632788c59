"""Settings of the reporting service (HIBIKI_* environment variables)."""

from __future__ import annotations

from hibiki_runtime.settings import ServiceSettings


class ReportingSettings(ServiceSettings):
    service_name: str = "reporting"
    grpc_port: int = 50054
    http_port: int = 9104

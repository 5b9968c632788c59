"""Settings of the reporting service (HIBIKI_* environment variables)."""

from __future__ import annotations

from datetime import date

from hibiki_runtime.settings import ServiceSettings
from pydantic import Field


class ReportingSettings(ServiceSettings):
    service_name: str = "reporting"
    grpc_port: int = 50054
    http_port: int = 9104
    # Days kept before records are hard-deleted (the seed: 90 days, not recoverable).
    retention_days: int = Field(default=90, ge=1)
    retention_interval_seconds: float = Field(default=3600.0, gt=0)
    retention_batch: int = Field(default=1000, ge=1)
    # Extra non-business days (e.g. year-end closure) as a JSON list: ["2026-12-29", "2026-12-30"].
    closed_days: list[date] = Field(default_factory=list)

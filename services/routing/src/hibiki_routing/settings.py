"""Settings of the routing service (HIBIKI_* environment variables)."""

from __future__ import annotations

from hibiki_runtime.settings import ServiceSettings
from pydantic import Field


class RoutingSettings(ServiceSettings):
    service_name: str = "routing"
    grpc_port: int = 50052
    http_port: int = 9102
    housekeeping_interval_seconds: float = Field(default=10.0, gt=0)
    # A call without events for this long counts as gone (its CallEnded was lost) for the gauge.
    call_active_minutes: float = Field(default=60.0, gt=0)
    # Call state (it holds caller numbers) is deleted this long after the call's last event.
    call_state_retention_hours: float = Field(default=168.0, gt=0)
    # guidance-tts gRPC address ("host:port"); when set, flows' guidances are checked and their usage recorded
    # there (unset: not checked, and ValidateFlow warns).
    guidance_address: str = ""
    # JSON {tenant_id: platform bearer token}: guidance-tts takes the tenant from the token.
    guidance_tokens: dict[str, str] = Field(default_factory=dict)
    # sms-gateway gRPC address ("host:port"); when set, the SMS boxes a flow sends from must exist to validate
    # and publish it (unset: not checked, and ValidateFlow warns).
    sms_address: str = ""
    # JSON {tenant_id: platform bearer token} for sms-gateway.
    sms_tokens: dict[str, str] = Field(default_factory=dict)

"""Settings of the sms-gateway service (HIBIKI_* environment variables)."""

from __future__ import annotations

from hibiki_runtime.settings import ServiceSettings


class SmsGatewaySettings(ServiceSettings):
    service_name: str = "sms-gateway"
    grpc_port: int = 50053
    http_port: int = 9103

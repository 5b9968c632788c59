"""Settings of the routing service (HIBIKI_* environment variables)."""

from __future__ import annotations

from hibiki_runtime.settings import ServiceSettings


class RoutingSettings(ServiceSettings):
    service_name: str = "routing"
    grpc_port: int = 50052
    http_port: int = 9102
    not_in_service_text: str = "おかけになった電話番号は現在使われておりません。"

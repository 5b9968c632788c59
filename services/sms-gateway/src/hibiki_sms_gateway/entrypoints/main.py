"""Process entry point of the sms-gateway service."""

from __future__ import annotations

from pathlib import Path

from hibiki.sms.v1 import sms_box_service_pb2, sms_box_service_pb2_grpc
from hibiki_runtime.service import ServiceRuntime

from hibiki_sms_gateway.settings import SmsGatewaySettings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def build_runtime(settings: SmsGatewaySettings | None = None) -> ServiceRuntime:
    """Wire the sms-gateway service onto the shared runtime."""
    settings = settings or SmsGatewaySettings()
    runtime = ServiceRuntime(settings, migrations_dir=MIGRATIONS)
    runtime.add_grpc_service(
        sms_box_service_pb2.DESCRIPTOR.services_by_name["SmsBoxService"].full_name,
        lambda server: sms_box_service_pb2_grpc.add_SmsBoxServiceServicer_to_server(
            sms_box_service_pb2_grpc.SmsBoxServiceServicer(), server
        ),
    )
    return runtime


def main() -> None:
    build_runtime().run()

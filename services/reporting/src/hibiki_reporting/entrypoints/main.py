"""Process entry point of the reporting service."""

from __future__ import annotations

from pathlib import Path

from hibiki.reporting.v1 import report_service_pb2, report_service_pb2_grpc
from hibiki_runtime.service import ServiceRuntime

from hibiki_reporting.settings import ReportingSettings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def build_runtime(settings: ReportingSettings | None = None) -> ServiceRuntime:
    """Wire the reporting service onto the shared runtime."""
    settings = settings or ReportingSettings()
    runtime = ServiceRuntime(settings, migrations_dir=MIGRATIONS)
    runtime.add_grpc_service(
        report_service_pb2.DESCRIPTOR.services_by_name["ReportService"].full_name,
        lambda server: report_service_pb2_grpc.add_ReportServiceServicer_to_server(
            report_service_pb2_grpc.ReportServiceServicer(), server
        ),
    )
    return runtime


def main() -> None:
    build_runtime().run()

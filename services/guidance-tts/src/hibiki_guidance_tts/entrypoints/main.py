"""Process entry point of the guidance-tts service."""

from __future__ import annotations

from pathlib import Path

from hibiki.guidance.v1 import guidance_service_pb2, guidance_service_pb2_grpc
from hibiki_runtime.service import ServiceRuntime

from hibiki_guidance_tts.settings import GuidanceTtsSettings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def build_runtime(settings: GuidanceTtsSettings | None = None) -> ServiceRuntime:
    """Wire the guidance-tts service onto the shared runtime."""
    settings = settings or GuidanceTtsSettings()
    runtime = ServiceRuntime(settings, migrations_dir=MIGRATIONS)
    runtime.add_grpc_service(
        guidance_service_pb2.DESCRIPTOR.services_by_name["GuidanceService"].full_name,
        lambda server: guidance_service_pb2_grpc.add_GuidanceServiceServicer_to_server(
            guidance_service_pb2_grpc.GuidanceServiceServicer(), server
        ),
    )
    return runtime


def main() -> None:
    build_runtime().run()

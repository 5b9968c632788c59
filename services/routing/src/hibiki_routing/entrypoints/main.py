"""Process entry point of the routing service."""

from __future__ import annotations

from pathlib import Path

from hibiki.routing.v1 import routing_service_pb2, routing_service_pb2_grpc
from hibiki_runtime.events import CALL_EVENTS
from hibiki_runtime.service import ServiceRuntime

from hibiki_routing.service_layer.call_events import CallEventsHandler
from hibiki_routing.settings import RoutingSettings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def build_runtime(settings: RoutingSettings | None = None) -> ServiceRuntime:
    """Wire the routing service onto the shared runtime."""
    settings = settings or RoutingSettings()
    runtime = ServiceRuntime(settings, migrations_dir=MIGRATIONS)
    runtime.consume(
        CALL_EVENTS, CallEventsHandler(runtime.sessions, runtime.relay.notify, settings.not_in_service_text)
    )
    runtime.add_grpc_service(
        routing_service_pb2.DESCRIPTOR.services_by_name["RoutingService"].full_name,
        lambda server: routing_service_pb2_grpc.add_RoutingServiceServicer_to_server(
            routing_service_pb2_grpc.RoutingServiceServicer(), server
        ),
    )
    return runtime


def main() -> None:
    build_runtime().run()

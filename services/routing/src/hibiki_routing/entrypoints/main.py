"""Process entry point of the routing service."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hibiki.routing.v1 import routing_service_pb2, routing_service_pb2_grpc
from hibiki_runtime.service import ServiceRuntime

from hibiki_routing.adapters.guidance_usage import GrpcGuidanceUsage
from hibiki_routing.adapters.metrics import RoutingMetrics
from hibiki_routing.adapters.sms_boxes import GrpcSmsBoxes
from hibiki_routing.entrypoints import call_events_consumer
from hibiki_routing.entrypoints.grpc_api import RoutingServicer
from hibiki_routing.service_layer.blocklist import BlocklistService
from hibiki_routing.service_layer.call_events import CallEventsHandler
from hibiki_routing.service_layer.call_housekeeping import keep_house
from hibiki_routing.service_layer.flows import FlowService
from hibiki_routing.settings import RoutingSettings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
log = logging.getLogger("hibiki.routing")


def build_runtime(settings: RoutingSettings | None = None) -> ServiceRuntime:
    """Wire the routing service onto the shared runtime."""
    settings = settings or RoutingSettings()
    runtime = ServiceRuntime(settings, migrations_dir=MIGRATIONS)
    metrics = RoutingMetrics(runtime.metrics.registry)
    runtime.consume(
        call_events_consumer.TRANSLATORS,
        CallEventsHandler(runtime.sessions, runtime.relay.notify, metrics),
    )
    usage = None
    if settings.guidance_address:
        usage = GrpcGuidanceUsage(settings.guidance_address, settings.guidance_tokens)
        runtime.on_shutdown(usage.close)
    sms_boxes = None
    if settings.sms_address:
        sms_boxes = GrpcSmsBoxes(settings.sms_address, settings.sms_tokens)
        runtime.on_shutdown(sms_boxes.close)
    flows = FlowService(runtime.sessions, usage, guidances=usage, sms_boxes=sms_boxes)
    servicer = RoutingServicer(flows, BlocklistService(runtime.sessions))
    runtime.add_grpc_service(
        routing_service_pb2.DESCRIPTOR.services_by_name["RoutingService"].full_name,
        lambda server: routing_service_pb2_grpc.add_RoutingServiceServicer_to_server(servicer, server),
    )

    async def call_housekeeping() -> None:
        while True:
            try:
                await keep_house(
                    runtime.sessions,
                    metrics,
                    datetime.now(UTC),
                    active_window=timedelta(minutes=settings.call_active_minutes),
                    retention=timedelta(hours=settings.call_state_retention_hours),
                )
            except Exception:
                log.warning("call housekeeping failed; retrying", exc_info=True)
            await asyncio.sleep(settings.housekeeping_interval_seconds)

    runtime.add_task("call-housekeeping", call_housekeeping)
    return runtime


def main() -> None:
    build_runtime().run()

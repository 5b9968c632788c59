"""Process entry point of the reporting service: wires consumers, gRPC, the CSV route and retention."""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path

from hibiki.reporting.v1 import report_service_pb2, report_service_pb2_grpc
from hibiki_runtime.service import ServiceRuntime

from hibiki_reporting.adapters.metrics import ReportingMetrics
from hibiki_reporting.domain.calendar import TOKYO, BusinessCalendar
from hibiki_reporting.domain.finalization import FinalizationSchedule
from hibiki_reporting.entrypoints import (
    call_actions_consumer,
    call_events_consumer,
    sms_requests_consumer,
    sms_results_consumer,
)
from hibiki_reporting.entrypoints.grpc_api import ReportServicer
from hibiki_reporting.entrypoints.http_api import add_csv_route
from hibiki_reporting.service_layer.ingest import Ingestor, consumer_name
from hibiki_reporting.service_layer.queries import ReportQueries
from hibiki_reporting.service_layer.retention import RetentionJob
from hibiki_reporting.settings import ReportingSettings
from hibiki_reporting.web import add_report_page

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# One consumer of the four topics (one group join), each record translated by its topic's edge.
TRANSLATORS = {
    **call_events_consumer.TRANSLATORS,
    **call_actions_consumer.TRANSLATORS,
    **sms_requests_consumer.TRANSLATORS,
    **sms_results_consumer.TRANSLATORS,
}


def build_runtime(settings: ReportingSettings | None = None) -> ServiceRuntime:
    """Wire the reporting service onto the shared runtime."""
    settings = settings or ReportingSettings()
    runtime = ServiceRuntime(settings, migrations_dir=MIGRATIONS)
    schedule = FinalizationSchedule(BusinessCalendar(settings.closed_days))

    def final_through_timestamp() -> float:
        final_day = schedule.final_through(datetime.now(UTC))
        return datetime.combine(final_day, time(0), TOKYO).timestamp()

    metrics = ReportingMetrics(runtime.registry, final_through_timestamp)
    ingestor = Ingestor(runtime.sessions, metrics, retention_days=settings.retention_days)
    runtime.consume(TRANSLATORS, ingestor)

    queries = ReportQueries(runtime.sessions, schedule)
    servicer = ReportServicer(queries)
    runtime.add_grpc_service(
        report_service_pb2.DESCRIPTOR.services_by_name["ReportService"].full_name,
        lambda server: report_service_pb2_grpc.add_ReportServiceServicer_to_server(servicer, server),
    )
    add_csv_route(runtime.http, queries, runtime.authenticator)
    add_report_page(runtime.http, queries, runtime.authenticator)

    retention = RetentionJob(
        runtime.sessions,
        metrics,
        days=settings.retention_days,
        batch_size=settings.retention_batch,
        consumers=[consumer_name(topic) for topic in TRANSLATORS],
    )
    runtime.every("retention", settings.retention_interval_seconds, retention.run_once)
    return runtime


def main() -> None:
    build_runtime().run()

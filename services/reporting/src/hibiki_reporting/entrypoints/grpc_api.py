"""ReportService: thin gRPC servicer over the report queries; every call is scoped to the caller's tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

from hibiki.reporting.v1 import report_service_pb2 as pb
from hibiki.reporting.v1 import report_service_pb2_grpc
from hibiki_runtime.auth import Principal, Role, require_role
from hibiki_runtime.errors import InvalidArgument
from hibiki_runtime.phone import optional_phone, require_phone

from hibiki_reporting.domain.csv_export import CsvEncoding, CsvKind
from hibiki_reporting.domain.validation import DayRange, parse_range
from hibiki_reporting.entrypoints import messages
from hibiki_reporting.service_layer.export import csv_chunks
from hibiki_reporting.service_layer.queries import ReportQueries

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
_ENCODINGS = {
    pb.CSV_ENCODING_UNSPECIFIED: CsvEncoding.UTF8_BOM,
    pb.CSV_ENCODING_UTF8_BOM: CsvEncoding.UTF8_BOM,
    pb.CSV_ENCODING_CP932: CsvEncoding.CP932,
}
_KINDS = {
    pb.CSV_KIND_UNSPECIFIED: CsvKind.DAILY,
    pb.CSV_KIND_DAILY: CsvKind.DAILY,
    pb.CSV_KIND_CALLS: CsvKind.CALLS,
    pb.CSV_KIND_SMS: CsvKind.SMS,
}


def _reader() -> Principal:
    return require_role(Role.OPERATOR, Role.VIEWER)


def _days(request: Any) -> DayRange:
    return parse_range(request.range.start_date, request.range.end_date)


class ReportServicer(report_service_pb2_grpc.ReportServiceServicer):
    def __init__(self, queries: ReportQueries) -> None:
        self._queries = queries

    async def GetDailyReport(
        self, request: pb.GetDailyReportRequest, context: Any
    ) -> pb.GetDailyReportResponse:
        tenant = _reader().tenant_id
        dialed = optional_phone("dialed_number", request.dialed_number)
        rows = await self._queries.daily_report(tenant, _days(request), dialed)
        return pb.GetDailyReportResponse(rows=[messages.daily_row(row) for row in rows])

    async def GetRouteFunnel(
        self, request: pb.GetRouteFunnelRequest, context: Any
    ) -> pb.GetRouteFunnelResponse:
        tenant = _reader().tenant_id
        dialed = optional_phone("dialed_number", request.dialed_number)
        rows = await self._queries.route_funnel(tenant, _days(request), dialed)
        return pb.GetRouteFunnelResponse(
            rows=[
                pb.RouteFunnelRow(
                    route_id=row.route_id,
                    route_name=row.route_name,
                    reached=row.reached,
                    invalid_inputs=row.invalid_inputs,
                    timeouts=row.timeouts,
                    abandoned=row.abandoned,
                    flow_id=row.flow_id,
                    dialed_number=row.dialed_number,
                )
                for row in rows
            ]
        )

    async def GetLinkClickReport(
        self, request: pb.GetLinkClickReportRequest, context: Any
    ) -> pb.GetLinkClickReportResponse:
        tenant = _reader().tenant_id
        dialed = optional_phone("dialed_number", request.dialed_number)
        rows = await self._queries.link_clicks(tenant, _days(request), dialed)
        return pb.GetLinkClickReportResponse(
            rows=[
                pb.LinkClickRow(
                    date=row.day.isoformat(),
                    box_number=row.box_number,
                    sms_accepted=row.sms_accepted,
                    sms_clicked=row.sms_clicked,
                    clicks=row.clicks,
                    click_through_rate=row.click_through_rate,
                )
                for row in rows
            ]
        )

    async def ListCalls(self, request: pb.ListCallsRequest, context: Any) -> pb.ListCallsResponse:
        tenant = _reader().tenant_id
        if request.page_size > MAX_PAGE_SIZE:
            raise InvalidArgument.field("page_size", f"at most {MAX_PAGE_SIZE}")
        token = request.page_token  # an offset: ASCII digits ("²".isdigit() is true), at most a row count
        if token and not (token.isascii() and token.isdigit() and len(token) <= 9):
            raise InvalidArgument.field("page_token", "not a token from a previous response")
        size = request.page_size or DEFAULT_PAGE_SIZE
        offset = int(request.page_token or 0)
        calls = await self._queries.list_calls(
            tenant,
            _days(request),
            dialed=optional_phone("dialed_number", request.dialed_number),
            caller=optional_phone("caller_number", request.caller_number),
            outcome=messages.outcome_of(request.outcome),
            offset=offset,
            limit=size + 1,  # one more tells whether another page exists
        )
        return pb.ListCallsResponse(
            calls=[messages.call_message(call) for call in calls[:size]],
            next_page_token=str(offset + size) if len(calls) > size else "",
        )

    async def TraceCaller(self, request: pb.TraceCallerRequest, context: Any) -> pb.TraceCallerResponse:
        tenant = _reader().tenant_id
        caller = require_phone("caller_number", request.caller_number)
        trace = await self._queries.trace_caller(tenant, caller, _days(request))
        return pb.TraceCallerResponse(
            verdict=messages.verdict_message(trace.answer.verdict),
            summary=trace.answer.summary,
            calls=[
                pb.CallTrace(
                    call=messages.call_message(item.call), sms=[messages.sms_message(s) for s in item.sms]
                )
                for item in trace.calls
            ],
        )

    async def GetFinalizationStatus(
        self, request: pb.GetFinalizationStatusRequest, context: Any
    ) -> pb.GetFinalizationStatusResponse:
        _reader()
        at = request.as_of.ToDatetime(tzinfo=UTC) if request.HasField("as_of") else None
        status = self._queries.finalization(at)
        return pb.GetFinalizationStatusResponse(
            final_through_date=status.final_through.isoformat(),
            next_finalization_time=messages.timestamp(status.next_time),
            next_final_through_date=status.next_final_through.isoformat(),
        )

    async def ExportCsv(
        self, request: pb.ExportCsvRequest, context: Any
    ) -> AsyncIterator[pb.ExportCsvResponse]:
        tenant = _reader().tenant_id
        if request.encoding not in _ENCODINGS:
            raise InvalidArgument.field("encoding", "unknown CSV encoding")
        if request.kind not in _KINDS:
            raise InvalidArgument.field("kind", "unknown CSV kind")
        dialed = optional_phone("dialed_number", request.dialed_number)
        chunks = csv_chunks(
            self._queries, tenant, _days(request), dialed, _ENCODINGS[request.encoding], _KINDS[request.kind]
        )
        async for chunk in chunks:
            yield pb.ExportCsvResponse(data=chunk)

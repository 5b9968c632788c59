"""CSV export as a stream of byte chunks (gRPC streaming and the HTTP download share it)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from hibiki_reporting.domain.csv_export import (
    CsvEncoder,
    CsvEncoding,
    CsvKind,
    header_line,
    history_header_line,
    history_line,
    row_line,
)
from hibiki_reporting.domain.validation import DayRange
from hibiki_reporting.service_layer.queries import ReportQueries

CHUNK_BYTES = 32 * 1024


async def csv_chunks(
    queries: ReportQueries,
    tenant_id: str,
    days: DayRange,
    dialed: str,
    encoding: CsvEncoding,
    kind: CsvKind = CsvKind.DAILY,
) -> AsyncIterator[bytes]:
    """The daily report (or the calls or SMS themselves) as CSV, in chunks of about CHUNK_BYTES; never the
    whole file in memory."""
    encoder = CsvEncoder(encoding)
    pending = bytearray(encoder.encode(header_line() if kind is CsvKind.DAILY else history_header_line(kind)))
    async for line in _lines(queries, tenant_id, days, dialed, kind):
        pending += encoder.encode(line)
        if len(pending) >= CHUNK_BYTES:
            yield bytes(pending)
            pending.clear()
    yield bytes(pending)


async def _lines(
    queries: ReportQueries, tenant_id: str, days: DayRange, dialed: str, kind: CsvKind
) -> AsyncIterator[str]:
    if kind is CsvKind.DAILY:
        async for row in queries.stream_daily_report(tenant_id, days, dialed):
            yield row_line(row)
    else:
        async for record in queries.stream_history(tenant_id, days, dialed, kind):
            yield history_line(record)

"""CSV export as a stream of byte chunks (gRPC streaming and the HTTP download share it)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from hibiki_reporting.domain.csv_export import CsvEncoder, CsvEncoding, header_line, row_line
from hibiki_reporting.domain.validation import DayRange
from hibiki_reporting.service_layer.queries import ReportQueries

CHUNK_BYTES = 32 * 1024


async def csv_chunks(
    queries: ReportQueries, tenant_id: str, days: DayRange, dialed: str, encoding: CsvEncoding
) -> AsyncIterator[bytes]:
    """The daily report as CSV, in chunks of about CHUNK_BYTES; never the whole file in memory."""
    encoder = CsvEncoder(encoding)
    pending = bytearray(encoder.encode(header_line()))
    async for row in queries.stream_daily_report(tenant_id, days, dialed):
        pending += encoder.encode(row_line(row))
        if len(pending) >= CHUNK_BYTES:
            yield bytes(pending)
            pending.clear()
    yield bytes(pending)

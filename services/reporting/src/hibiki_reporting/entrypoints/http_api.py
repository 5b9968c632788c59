"""GET /reports/{daily,calls,sms}.csv?from=YYYY-MM-DD&to=YYYY-MM-DD&encoding=utf-8|cp932[&dialed_number=…].

daily.csv: the figures per day and dialed number; calls.csv: one line per call (着信履歴); sms.csv: one line
per SMS request (SMS送信履歴).
"""

from __future__ import annotations

from aiohttp import web
from hibiki_runtime.auth import Authenticator, Role
from hibiki_runtime.errors import InvalidArgument
from hibiki_runtime.http import http_principal
from hibiki_runtime.phone import optional_phone

from hibiki_reporting.domain.csv_export import CsvEncoding, CsvKind
from hibiki_reporting.domain.validation import parse_range
from hibiki_reporting.service_layer.export import csv_chunks
from hibiki_reporting.service_layer.queries import ReportQueries

PATH = "/reports/daily.csv"
PATHS = {CsvKind.DAILY: PATH, CsvKind.CALLS: "/reports/calls.csv", CsvKind.SMS: "/reports/sms.csv"}
_FILE_PREFIXES = {CsvKind.DAILY: "report", CsvKind.CALLS: "calls", CsvKind.SMS: "sms"}
_ENCODINGS = {
    "utf-8": CsvEncoding.UTF8_BOM,
    "utf8": CsvEncoding.UTF8_BOM,
    "utf-8-bom": CsvEncoding.UTF8_BOM,
    "cp932": CsvEncoding.CP932,
    "shift_jis": CsvEncoding.CP932,
    "sjis": CsvEncoding.CP932,
}
_CHARSETS = {CsvEncoding.UTF8_BOM: "utf-8", CsvEncoding.CP932: "Shift_JIS"}


def add_csv_route(app: web.Application, queries: ReportQueries, authenticator: Authenticator) -> None:
    async def export_csv(request: web.Request) -> web.StreamResponse:
        kind = next(kind for kind, path in PATHS.items() if path == request.path)
        tenant = http_principal(request, authenticator, Role.OPERATOR, Role.VIEWER).tenant_id
        query = request.query
        try:
            days = parse_range(query.get("from", ""), query.get("to", ""), ("from", "to"))
            dialed = optional_phone("dialed_number", query.get("dialed_number", ""))
            encoding = _ENCODINGS.get(query.get("encoding", "utf-8").lower())
            if encoding is None:
                raise InvalidArgument.field("encoding", "use utf-8 (with BOM) or cp932")
        except InvalidArgument as error:
            raise web.HTTPBadRequest(text=error.message) from error
        filename = f"{_FILE_PREFIXES[kind]}_{days.start:%Y%m%d}_{days.end:%Y%m%d}.csv"
        response = web.StreamResponse(
            headers={
                "Content-Type": f"text/csv; charset={_CHARSETS[encoding]}",
                "Content-Disposition": f'attachment; filename="{filename}"',
            }
        )
        await response.prepare(request)
        async for chunk in csv_chunks(queries, tenant, days, dialed, encoding, kind):
            await response.write(chunk)
        await response.write_eof()
        return response

    for path in PATHS.values():
        app.router.add_get(path, export_csv)

"""GET /reports/daily.csv?from=YYYY-MM-DD&to=YYYY-MM-DD&encoding=utf-8|cp932[&dialed_number=…]."""

from __future__ import annotations

from aiohttp import web
from hibiki_runtime.auth import Authenticator, Role
from hibiki_runtime.errors import InvalidArgument
from hibiki_runtime.http import http_principal

from hibiki_reporting.domain.csv_export import CsvEncoding
from hibiki_reporting.domain.validation import normalize_phone, parse_range
from hibiki_reporting.service_layer.export import csv_chunks
from hibiki_reporting.service_layer.queries import ReportQueries

PATH = "/reports/daily.csv"
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
    async def daily_csv(request: web.Request) -> web.StreamResponse:
        tenant = http_principal(request, authenticator, Role.OPERATOR, Role.VIEWER).tenant_id
        query = request.query
        try:
            days = parse_range(query.get("from", ""), query.get("to", ""), ("from", "to"))
            dialed = query.get("dialed_number", "")
            dialed = normalize_phone(dialed, "dialed_number") if dialed else ""
            encoding = _ENCODINGS.get(query.get("encoding", "utf-8").lower())
            if encoding is None:
                raise InvalidArgument.field("encoding", "use utf-8 (with BOM) or cp932")
        except InvalidArgument as error:
            raise web.HTTPBadRequest(text=error.message) from error
        filename = f"report_{days.start:%Y%m%d}_{days.end:%Y%m%d}.csv"
        response = web.StreamResponse(
            headers={
                "Content-Type": f"text/csv; charset={_CHARSETS[encoding]}",
                "Content-Disposition": f'attachment; filename="{filename}"',
            }
        )
        await response.prepare(request)
        async for chunk in csv_chunks(queries, tenant, days, dialed, encoding):
            await response.write(chunk)
        await response.write_eof()
        return response

    app.router.add_get(PATH, daily_csv)

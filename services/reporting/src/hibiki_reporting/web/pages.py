"""aiohttp handlers of the report page; the figures come from ReportQueries, never from SQL here."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web
from hibiki_runtime.auth import Authenticator, Principal
from hibiki_runtime.errors import InvalidArgument, Unauthenticated
from hibiki_runtime.phone import optional_phone, require_phone

from hibiki_reporting.domain.activity import Granularity, daily_activity, granularity
from hibiki_reporting.domain.calendar import TOKYO, report_date
from hibiki_reporting.domain.csv_export import CsvKind, changes_text
from hibiki_reporting.domain.labels import carrier_label, reject_reason_label, sms_reason_label
from hibiki_reporting.domain.validation import DayRange, parse_range
from hibiki_reporting.entrypoints.http_api import PATH as CSV_PATH
from hibiki_reporting.entrypoints.http_api import PATHS as CSV_PATHS
from hibiki_reporting.service_layer.queries import ReportQueries, Trace
from hibiki_reporting.web import session
from hibiki_reporting.web.activity_chart import SERIES_LABELS, activity_chart
from hibiki_reporting.web.errors import ErrorText, error_text, invalid_input_text
from hibiki_reporting.web.funnel_chart import STAGES, funnel_chart
from hibiki_reporting.web.labels import outcome_label, sms_status_label, stage_label, verdict_step

HERE = Path(__file__).resolve().parent
logger = logging.getLogger(__name__)
PAGE = "/reports/"
LOGIN = "/reports/login"
LOGOUT = "/reports/logout"
TRACE = "/reports/trace"
DEFAULT_DAYS = 7
_SECURITY_HEADERS = {
    # Everything is served by this service: no scripts at all, styles and images from here only.
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    # Not "no-referrer": browsers then send "Origin: null" on form posts, and the CSRF check needs the origin.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
)
_templates.filters["tokyo"] = lambda at: at.astimezone(TOKYO).strftime("%Y-%m-%d %H:%M:%S") if at else ""
_templates.globals.update(
    outcome_label=outcome_label,
    stage_label=stage_label,
    sms_status_label=sms_status_label,
    carrier_label=carrier_label,
    reject_reason_label=reject_reason_label,
    sms_reason_label=sms_reason_label,
    changes_text=changes_text,
    stages=STAGES,
    activity_series=SERIES_LABELS,
)


def render(template: str, status: int = 200, **context: Any) -> web.Response:
    html = _templates.get_template(template).render(**context)
    return web.Response(text=html, status=status, content_type="text/html", headers=_SECURITY_HEADERS)


def render_error(error: ErrorText, headers: dict[str, str] | None = None) -> web.Response:
    response = render("error.html", status=error.status, error=error)
    response.headers.update(headers or {})
    return response


class ReportPage:
    def __init__(self, queries: ReportQueries, authenticator: Authenticator) -> None:
        self._queries = queries
        self._authenticator = authenticator

    def _principal(self, request: web.Request) -> Principal:
        principal = session.session_principal(request, self._authenticator)
        if principal is None:
            raise web.HTTPSeeOther(LOGIN)
        if principal.role not in session.PAGE_ROLES:
            raise web.HTTPForbidden(text=f"role {principal.role.value} may not read reports")
        return principal

    async def login_form(self, request: web.Request) -> web.Response:
        return _login_page(request)

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        session.check_post(
            request, str(form.get("csrf", "")), request.cookies.get(session.LOGIN_CSRF_COOKIE, "")
        )
        token = str(form.get("token", "")).strip()
        try:
            principal = self._authenticator.authenticate(session.bearer(token))
        except Unauthenticated:
            principal = None
        if principal is None or principal.role not in session.PAGE_ROLES:
            return _login_page(
                request, "トークンが正しくありません (unknown token, or one that may not read reports)"
            )
        redirect = web.HTTPSeeOther(PAGE)
        session.start_session(redirect, request, token)
        raise redirect

    async def logout(self, request: web.Request) -> web.Response:
        form = await request.post()
        session.check_post(request, str(form.get("csrf", "")), session.csrf_token(request))
        redirect = web.HTTPSeeOther(LOGIN)
        session.end_session(redirect)
        raise redirect

    async def report(self, request: web.Request) -> web.Response:
        principal = self._principal(request)
        return await self._render_report(request, principal, request.query, trace=None, caller="")

    async def trace(self, request: web.Request) -> web.Response:
        principal = self._principal(request)
        form = await request.post()
        session.check_post(request, str(form.get("csrf", "")), session.csrf_token(request))
        caller = str(form.get("caller_number", ""))
        try:
            number = require_phone("caller_number", caller)
            days = _days(
                str(form.get("trace_from", "")), str(form.get("trace_to", "")), ("trace_from", "trace_to")
            )
        except InvalidArgument as error:
            return await self._render_report(request, principal, form, None, caller, error.message)
        found = await self._queries.trace_caller(principal.tenant_id, number, days)
        return await self._render_report(request, principal, form, found, caller)

    async def _render_report(
        self,
        request: web.Request,
        principal: Principal,
        query: Any,
        trace: Trace | None,
        caller: str,
        trace_error: str = "",
    ) -> web.Response:
        dialed = str(query.get("dialed_number", "")).strip()
        try:
            days = _days(str(query.get("from", "")), str(query.get("to", "")), ("from", "to"))
            dialed = optional_phone("dialed_number", dialed)
        except InvalidArgument as error:
            return render_error(invalid_input_text(error))
        tenant = principal.tenant_id
        rows = await self._queries.daily_report(tenant, days, dialed)
        funnel = await self._queries.route_funnel(tenant, days, dialed)
        if granularity(days) is Granularity.HOUR:
            activity = await self._queries.hourly_activity(tenant, days.start, dialed)
        else:
            activity = daily_activity(days, rows)
        csv_query = {"from": days.start.isoformat(), "to": days.end.isoformat()}
        if dialed:
            csv_query["dialed_number"] = dialed
        return render(
            "report.html",
            principal=principal,
            days=days,
            dialed=dialed,
            rows=rows,
            totals=_totals(rows),
            funnel=funnel_chart(funnel),
            activity=activity_chart(activity),
            finalization=self._queries.finalization(),
            csv_utf8=f"{CSV_PATH}?{urlencode({**csv_query, 'encoding': 'utf-8'})}",
            csv_cp932=f"{CSV_PATH}?{urlencode({**csv_query, 'encoding': 'cp932'})}",
            calls_csv=f"{CSV_PATHS[CsvKind.CALLS]}?{urlencode({**csv_query, 'encoding': 'utf-8'})}",
            sms_csv=f"{CSV_PATHS[CsvKind.SMS]}?{urlencode({**csv_query, 'encoding': 'utf-8'})}",
            csrf=session.csrf_token(request),
            trace=trace,
            verdict_step=verdict_step(trace.answer.verdict) if trace else "",
            caller=caller,
            trace_from=str(query.get("trace_from", "")) or days.start.isoformat(),
            trace_to=str(query.get("trace_to", "")) or days.end.isoformat(),
            trace_error=trace_error,
        )


def _login_page(request: web.Request, error: str = "") -> web.Response:
    csrf = session.login_csrf(request)
    response = render("login.html", status=401 if error else 200, error=error, csrf=csrf)
    session.remember_login_csrf(response, request, csrf)
    return response


async def _to_page(_request: web.Request) -> web.Response:
    raise web.HTTPSeeOther(PAGE)


def _days(start: str, end: str, fields: tuple[str, str]) -> DayRange:
    """The chosen range, or the last seven Tokyo days when none was chosen."""
    if not start and not end:
        today = report_date(datetime.now(UTC))
        return DayRange(today - timedelta(days=DEFAULT_DAYS - 1), today)
    return parse_range(start, end, fields)


def _totals(rows: list[Any]) -> dict[str, int]:
    names = ("calls", "abandoned_calls", "platform_failures", "sms_requested", "sms_accepted",
             "sms_delivered", "sms_undelivered", "sms_rejected_total", "sms_failed")  # fmt: skip
    return {name: sum(getattr(row, name) for row in rows) for name in names}


def _csv_cookie_bridge() -> Any:
    """Lets the page's CSV buttons reach the bearer-only CSV routes with the session cookie.

    Only for GET of those routes and only when no Authorization header was sent; the routes themselves still
    authenticate and scope by tenant as for any bearer caller.
    """

    @web.middleware
    async def bridge(request: web.Request, handler: Any) -> web.StreamResponse:
        token = request.cookies.get(session.SESSION_COOKIE, "")
        if (
            request.path in CSV_PATHS.values()
            and request.method == "GET"
            and token
            and "Authorization" not in request.headers
        ):
            request = request.clone(headers={**request.headers, "Authorization": f"Bearer {token}"})
        response: web.StreamResponse = await handler(request)
        return response

    return bridge


# The page's stylesheet and icon. Served by name rather than with add_static, whose 404 for a missing file is
# decided only when the response is sent, past the error pages.
_STATIC_FILES = {path.name: path for path in (HERE / "static").iterdir() if path.is_file()}


async def _static_file(request: web.Request) -> web.FileResponse:
    path = _STATIC_FILES.get(request.match_info["name"])
    if path is None:
        raise web.HTTPNotFound()
    return web.FileResponse(path)


def is_page_path(path: str) -> bool:
    """The page's paths: /reports and everything under /reports/ except the CSV routes (for programs)."""
    return (path == "/reports" or path.startswith(PAGE)) and path not in CSV_PATHS.values()


# Headers of an HTTP error that still matter on its page (405's allowed methods, 401's scheme).
_KEPT_HEADERS = ("Allow", "WWW-Authenticate")


def _error_pages() -> Any:
    """Answers every error of the page's paths with the Japanese error page (error.html), the ones aiohttp
    raises itself (404 of an unknown path, 405) and unexpected failures (500) included."""

    @web.middleware
    async def error_pages(request: web.Request, handler: Any) -> web.StreamResponse:
        if not is_page_path(request.path):
            response: web.StreamResponse = await handler(request)
            return response
        try:
            response = await handler(request)
        except web.HTTPException as error:
            if error.status < 400:
                raise
            default = f"{error.status}: {error.reason}"
            english = error.text if error.text and error.text != default else ""
            kept = {name: error.headers[name] for name in _KEPT_HEADERS if name in error.headers}
            return render_error(error_text(error.status, english or ""), kept)
        except Exception:
            logger.exception("report page failed: %s %s", request.method, request.path)
            return render_error(error_text(500))
        return response

    return error_pages


def add_report_page(app: web.Application, queries: ReportQueries, authenticator: Authenticator) -> None:
    """Serve the report page under /reports/ (login, report, caller trace, static files)."""
    page = ReportPage(queries, authenticator)
    app.router.add_get("/reports", _to_page)
    app.router.add_get(PAGE, page.report)
    app.router.add_get(LOGIN, page.login_form)
    app.router.add_post(LOGIN, page.login)
    app.router.add_post(LOGOUT, page.logout)
    app.router.add_post(TRACE, page.trace)
    app.router.add_get("/reports/static/{name}", _static_file)
    app.middlewares.append(_csv_cookie_bridge())
    app.middlewares.append(_error_pages())

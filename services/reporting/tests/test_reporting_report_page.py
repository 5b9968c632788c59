"""The report page's chart of calls and SMS over time (per Tokyo hour of one day, per day of a longer range),
and its error pages: Japanese with an English line for every error of /reports/, plain text for the CSV."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from hibiki_reporting.domain.activity import (
    Activity,
    ActivityPoint,
    CallHourTally,
    Granularity,
    SmsHourTally,
    daily_activity,
    granularity,
    hourly_activity,
)
from hibiki_reporting.domain.calendar import TOKYO, BusinessCalendar
from hibiki_reporting.domain.facts import SmsStatus
from hibiki_reporting.domain.figures import DailyFigures, RouteFunnelRow
from hibiki_reporting.domain.finalization import FinalizationSchedule
from hibiki_reporting.domain.sms import as_of, materialize_sms
from hibiki_reporting.domain.validation import DayRange
from hibiki_reporting.entrypoints.http_api import add_csv_route
from hibiki_reporting.service_layer.queries import ReportQueries
from hibiki_reporting.web import add_report_page
from hibiki_reporting.web.activity_chart import activity_chart, nice_step
from hibiki_reporting.web.funnel_chart import funnel_chart
from hibiki_reporting.web.pages import _totals, render
from hibiki_runtime.auth import Principal, Role, StaticTokenAuthenticator
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.reporting.tests.reporting_events import (
    EXPECTED,
    EXPECTED_HOURLY,
    SHOP,
    SUPPORT,
    Recorder,
    recorded_sequence,
)
from services.reporting.tests.reporting_recorded import SMS, at
from services.reporting.tests.test_reporting_finalized_days import (
    FINAL_DAY,
    NOW,
    accepted,
    delivered,
)
from services.reporting.tests.test_reporting_ingest import DAY1, TENANT, feed, ingestor, queries

DAY = date(2026, 11, 9)
Client = TestClient[web.Request, web.Application]
SERIES = ("calls", "sms_requested", "sms_accepted", "sms_delivered")


def figures(point: ActivityPoint) -> tuple[int, ...]:
    return tuple(int(getattr(point, name)) for name in SERIES)


def tokyo(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return datetime.combine(day, datetime.min.time(), TOKYO).replace(hour=hour, minute=minute)


# --- bucketing (domain) -------------------------------------------------------------------------------------


def test_one_day_is_per_hour_and_a_longer_range_per_day() -> None:
    assert granularity(DayRange(DAY, DAY)) is Granularity.HOUR
    assert granularity(DayRange(DAY, DAY + timedelta(days=1))) is Granularity.DAY


def test_hours_are_asia_tokyo_hours_of_the_day_whatever_the_zone_of_the_instant() -> None:
    calls = [
        CallHourTally(tokyo(0).astimezone(UTC), 2),  # 15:00 UTC the day before
        CallHourTally(tokyo(9, 59).astimezone(UTC)),
        CallHourTally(tokyo(10)),
        CallHourTally(tokyo(23, 30).astimezone(UTC), 3),
    ]
    sms = [
        SmsHourTally(tokyo(9, 59), SmsStatus.REQUESTED),
        SmsHourTally(tokyo(10, 1).astimezone(UTC), SmsStatus.DELIVERED, 2),
        SmsHourTally(tokyo(10, 2), SmsStatus.UNDELIVERED),
        SmsHourTally(tokyo(10, 3), SmsStatus.REJECTED),
        SmsHourTally(tokyo(10, 4), SmsStatus.FAILED),
    ]
    activity = hourly_activity(DAY, calls, sms)
    assert activity.granularity is Granularity.HOUR
    assert [point.start for point in activity.points] == [tokyo(hour) for hour in range(24)]
    by_hour = {point.start.hour: figures(point) for point in activity.points if any(figures(point))}
    assert by_hour == {0: (2, 0, 0, 0), 9: (1, 1, 0, 0), 10: (1, 5, 3, 2), 23: (3, 0, 0, 0)}
    assert (activity.total("calls"), activity.total("sms_requested")) == (7, 6)


def test_an_instant_of_another_tokyo_day_is_refused_not_dropped() -> None:
    with pytest.raises(ValueError, match="not in the Asia/Tokyo day 2026-11-09"):
        hourly_activity(DAY, [CallHourTally(tokyo(23, 59) + timedelta(minutes=1))], [])
    with pytest.raises(ValueError):
        hourly_activity(DAY, [], [SmsHourTally(tokyo(0) - timedelta(seconds=1), SmsStatus.REQUESTED)])


def test_an_sms_decided_after_its_day_became_final_counts_as_it_was_then() -> None:
    now = materialize_sms("req-a", SMS["req-a"])  # requested 10:00:26, accepted :27, delivered :40
    then = as_of(now, at(DAY1, 30))
    assert (now.status, then.status) == (SmsStatus.DELIVERED, SmsStatus.ACCEPTED)
    activity = hourly_activity(DAY, [], [SmsHourTally.of(now)], late=[(now, then)])
    assert figures(activity.points[10]) == (0, 1, 1, 0)
    assert hourly_activity(DAY, [], [SmsHourTally.of(now)]).points[10].sms_delivered == 1


def test_days_add_up_the_dialed_numbers_and_days_without_anything_are_zero() -> None:
    rows = [
        DailyFigures(DAY, SHOP, calls=6, sms_requested=4, sms_accepted=2, sms_delivered=1),
        DailyFigures(DAY, SUPPORT, calls=2),
        DailyFigures(DAY + timedelta(days=2), SHOP, calls=1, sms_requested=1),
    ]
    activity = daily_activity(DayRange(DAY, DAY + timedelta(days=2)), rows)
    assert activity.granularity is Granularity.DAY
    assert [(p.start.date(), figures(p)) for p in activity.points] == [
        (DAY, (8, 4, 2, 1)),
        (DAY + timedelta(days=1), (0, 0, 0, 0)),
        (DAY + timedelta(days=2), (1, 1, 0, 0)),
    ]
    with pytest.raises(ValueError):
        daily_activity(DayRange(DAY, DAY), rows)


# --- the read side (SQLite) ---------------------------------------------------------------------------------


async def test_hours_of_the_recorded_sequence_add_up_to_its_daily_rows(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    assert await feed(ingestor(sessions), recorded_sequence(TENANT, DAY1)) == []
    report = queries(sessions)
    for offset in (0, 1):
        day = DAY1.date() + timedelta(days=offset)
        activity = await report.hourly_activity(TENANT, day)
        shown = {(offset, p.start.hour): figures(p) for p in activity.points if any(figures(p))}
        assert shown == {key: value for key, value in EXPECTED_HOURLY.items() if key[0] == offset}
        rows = await report.daily_report(TENANT, DayRange(day, day))
        assert figures(daily_activity(DayRange(day, day), rows).points[0]) == tuple(
            activity.total(name) for name in SERIES
        )
    # The dialed-number filter and the tenant scope.
    support = await report.hourly_activity(TENANT, DAY1.date(), SUPPORT)
    calls, _abandoned, requested, accepted_, delivered_, *_ = EXPECTED[0, SUPPORT]
    assert figures(support.points[10]) == (calls, requested, accepted_, delivered_) == (2, 0, 0, 0)
    assert support.total("calls") == 2
    other = await report.hourly_activity("tenant-b", DAY1.date())
    assert all(figures(point) == (0, 0, 0, 0) for point in other.points)


async def test_the_hours_of_a_final_day_keep_its_final_figures(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    events = Recorder(TENANT)
    events.sms_call("call-1", "req-1", FINAL_DAY, SHOP)
    accepted(events, "req-1", FINAL_DAY + timedelta(seconds=15))
    delivered(events, "req-1", NOW - timedelta(minutes=1))  # after the day became final
    await feed(ingestor(sessions, now=NOW), events.records)
    report = ReportQueries(sessions, FinalizationSchedule(BusinessCalendar()), now=lambda: NOW)
    (row,) = await report.daily_report(TENANT, DayRange(FINAL_DAY.date(), FINAL_DAY.date()))
    assert (row.final, row.sms_accepted, row.sms_delivered) == (True, 1, 0)
    activity = await report.hourly_activity(TENANT, FINAL_DAY.date())
    assert figures(activity.points[FINAL_DAY.hour]) == (1, 1, 1, 0)


# --- rendering ----------------------------------------------------------------------------------------------


def page_context(
    rows: list[DailyFigures] | None = None, days: DayRange | None = None, activity: Activity | None = None
) -> dict[str, Any]:
    rows = rows or []
    days = days or DayRange(DAY, DAY)
    return {
        "principal": Principal(TENANT, Role.VIEWER),
        "days": days,
        "dialed": "",
        "rows": rows,
        "totals": _totals(rows),
        "funnel": funnel_chart([]),
        "activity": activity_chart(activity or daily_activity(days, rows)),
        "finalization": FinalizationSchedule(BusinessCalendar()).status(DAY1),
        "csv_utf8": "/reports/daily.csv",
        "csv_cp932": "/reports/daily.csv",
        "calls_csv": "/reports/calls.csv",
        "sms_csv": "/reports/sms.csv",
        "csrf": "token",
        "trace": None,
        "verdict_step": "",
        "caller": "",
        "trace_from": "",
        "trace_to": "",
        "trace_error": "",
    }


def page_with(rows: list[DailyFigures], days: DayRange, activity: Activity) -> str:
    return render("report.html", **page_context(rows, days, activity)).text or ""


def buckets(html: str) -> dict[str, tuple[int, ...]]:
    found = {}
    for attributes in re.findall(r'<g class="bucket" ([^>]*)>', html):
        values = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', attributes))
        found[values["bucket"]] = tuple(int(values[name.replace("_", "-")]) for name in SERIES)
    return found


def test_the_page_draws_the_hours_of_a_one_day_range_with_their_figures() -> None:
    calls = [CallHourTally(tokyo(10), 8)]
    sms = [
        SmsHourTally(tokyo(10), SmsStatus.DELIVERED),
        SmsHourTally(tokyo(10), SmsStatus.UNDELIVERED),
        SmsHourTally(tokyo(10), SmsStatus.FAILED),
        SmsHourTally(tokyo(10), SmsStatus.REQUESTED),
    ]
    html = page_with([], DayRange(DAY, DAY), hourly_activity(DAY, calls, sms))
    svg = html[html.index('<svg id="activity"') : html.index("</svg>", html.index('<svg id="activity"'))]
    assert 'data-granularity="hour"' in svg and 'viewBox="0 0 760 240"' in svg and 'width="100%"' in svg
    assert 'role="img" aria-labelledby="activity-title activity-desc"' in svg
    assert "時間別の着信数・SMS送信依頼数・送信完了・到達" in svg
    assert "合計: 着信数 8、SMS送信依頼数 4、送信完了 2、到達 1" in svg
    shown = buckets(svg)
    assert list(shown) == [f"2026-11-09T{hour:02}:00" for hour in range(24)]
    assert shown["2026-11-09T10:00"] == (8, 4, 2, 1)
    assert sum(sum(values) for values in shown.values()) == 8 + 4 + 2 + 1
    assert "<title>2026-11-09 10時台: 着信数 8、SMS送信依頼数 4、送信完了 2、到達 1</title>" in svg
    for name in SERIES:
        assert f'data-series="{name}"' in svg
    assert "<script" not in html.lower()


def test_the_page_draws_the_days_of_a_longer_range_and_says_when_there_is_nothing() -> None:
    rows = [DailyFigures(DAY, SHOP, calls=3, sms_requested=1), DailyFigures(DAY, SUPPORT, calls=2)]
    days = DayRange(DAY, DAY + timedelta(days=6))
    html = page_with(rows, days, daily_activity(days, rows))
    assert 'data-granularity="day"' in html and "日別の推移" in html
    shown = buckets(html)
    assert len(shown) == 7 and shown["2026-11-09"] == (5, 1, 0, 0) and shown["2026-11-10"] == (0, 0, 0, 0)
    empty = page_with([], days, daily_activity(days, []))
    assert 'id="no-activity"' in empty and '<svg id="activity"' not in empty
    # The daily table scrolls in its own box.
    assert '<div class="table-scroll" id="daily-scroll"' in html


def test_the_funnel_scales_with_the_page() -> None:
    funnel = funnel_chart([RouteFunnelRow("main", "メインメニュー", 8, 2, 1, 2)])
    page = render("report.html", **{**page_context(), "funnel": funnel}).text or ""
    svg = re.search(r'<svg id="funnel"[^>]*>', page)
    assert svg is not None
    assert 'width="100%"' in svg.group() and f'viewBox="0 0 {funnel.width} {funnel.height}"' in svg.group()


def test_value_axis_steps_are_round() -> None:
    assert [nice_step(n) for n in (0, 1, 4, 8, 9, 37, 100, 1234)] == [1, 1, 1, 2, 5, 10, 50, 500]


# --- error pages --------------------------------------------------------------------------------------------

TOKENS = {
    "token-viewer": {"tenant_id": TENANT, "role": "viewer"},
    "token-platform": {"tenant_id": TENANT, "role": "platform"},
}


class FailingQueries(ReportQueries):
    async def daily_report(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("secret detail of a failure")


async def client_of(report: ReportQueries) -> Client:
    app = web.Application()
    authenticator = StaticTokenAuthenticator(TOKENS)
    add_csv_route(app, report, authenticator)
    add_report_page(app, report, authenticator)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def client(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Client]:
    client = await client_of(queries(sessions))
    yield client
    await client.close()


SESSION = {"Cookie": "hibiki_report_session=token-viewer"}


async def error_page(response: ClientResponse, status: int) -> str:
    assert response.status == status
    assert response.content_type == "text/html"
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    html: str = await response.text()
    assert f'id="error-page" data-status="{status}"' in html
    assert '<html lang="ja">' in html
    return html


async def test_a_bad_range_or_number_is_explained_in_japanese_with_the_english_message(
    client: Client,
) -> None:
    reply = await client.get("/reports/?from=2026-13-01&to=x", headers=SESSION)
    html = await error_page(reply, 400)
    assert "開始日は YYYY-MM-DD の形式の日付で指定してください" in html
    assert "終了日は YYYY-MM-DD の形式の日付で指定してください" in html
    assert "expected a date YYYY-MM-DD" in html  # the English line
    html = await error_page(await client.get("/reports/?from=2026-11-09&to=2026-11-01", headers=SESSION), 400)
    assert "終了日は開始日と同じ日か、それより後の日にしてください" in html
    html = await error_page(await client.get("/reports/?from=2025-01-01&to=2026-11-01", headers=SESSION), 400)
    assert "期間は400日以内で指定してください" in html
    reply = await client.get("/reports/?from=2026-11-01&to=2026-11-02&dialed_number=abc", headers=SESSION)
    html = await error_page(reply, 400)
    assert "着信番号は 03-1234-5678、090-1234-5678 のような電話番号で指定してください" in html
    assert "expected a phone number" in html


async def test_errors_aiohttp_raises_itself_under_reports_are_japanese_pages(client: Client) -> None:
    html = await error_page(await client.get("/reports/no-such-page"), 404)
    assert "ページが見つかりません" in html and "Not found." in html
    await error_page(await client.get("/reports/static/no-such.css"), 404)
    await error_page(await client.get("/reports/static/../pages.py"), 404)
    stylesheet = await client.get("/reports/static/report.css")
    assert (stylesheet.status, stylesheet.content_type) == (200, "text/css")
    reply = await client.delete("/reports/", headers=SESSION)
    html = await error_page(reply, 405)
    assert "この操作はできません" in html and "Method not allowed." in html
    assert "GET" in reply.headers["Allow"]
    await error_page(await client.put("/reports/login"), 405)
    # Other paths of the service keep aiohttp's answers.
    other = await client.get("/elsewhere")
    assert other.status == 404 and other.content_type == "text/plain"


async def test_session_errors_are_japanese_pages(client: Client) -> None:
    forged = await client.post("/reports/trace", data={"csrf": "wrong"}, headers=SESSION)
    html = await error_page(forged, 403)
    assert "ページを再読み込みしてもう一度お試しください" in html
    assert "missing or wrong form token" in html
    platform = await client.get("/reports/", headers={"Cookie": "hibiki_report_session=token-platform"})
    html = await error_page(platform, 403)
    assert "may not read reports" in html
    # Still a redirect, not an error, without a session; the login form's own 401 stays the login form.
    anonymous = await client.get("/reports/", allow_redirects=False)
    assert (anonymous.status, anonymous.headers["Location"]) == (303, "/reports/login")


def test_a_401_page_leads_to_the_login() -> None:
    from hibiki_reporting.web.errors import error_text
    from hibiki_reporting.web.pages import render_error

    html = render_error(error_text(401)).text or ""
    assert "ログインしてください" in html and 'href="/reports/login"' in html and "Please log in" in html


async def test_a_failure_is_a_japanese_500_without_its_details(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    client = await client_of(FailingQueries(sessions, FinalizationSchedule(BusinessCalendar())))
    try:
        html = await error_page(await client.get("/reports/", headers=SESSION), 500)
        assert "サーバーでエラーが発生しました" in html and "secret" not in html
    finally:
        await client.close()


async def test_the_csv_routes_keep_plain_text_errors(client: Client) -> None:
    bearer = {"Authorization": "Bearer token-viewer"}
    reply = await client.get("/reports/daily.csv?from=2026-13-01&to=x", headers=bearer)
    assert reply.status == 400 and reply.content_type == "text/plain"
    assert (await reply.text()).startswith("from: expected a date YYYY-MM-DD")
    reply = await client.get(
        "/reports/calls.csv?from=2026-11-01&to=2026-11-02&dialed_number=x", headers=SESSION
    )
    assert reply.status == 400 and reply.content_type == "text/plain"
    anonymous = await client.get("/reports/sms.csv?from=2026-11-01&to=2026-11-02")
    assert anonymous.status == 401 and anonymous.content_type == "text/plain"

"""The report page of a reporting process, in a real headless Chromium and over plain HTTP: login, a chosen
range, the funnel chart, the CSV button and the caller trace, checked against a recorded event sequence
produced through a real broker (PostgreSQL underneath).

Like test_reporting, the module runs its own broker, so that no routing or sms-gateway process reacts to the
recorded events and changes what the page must show.
"""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import grpc
import pytest
from hibiki.reporting.v1 import report_service_pb2 as pb
from hibiki.reporting.v1 import report_service_pb2_grpc as pb_grpc
from hibiki_devstack.infra import Broker, Postgres, free_port, kafka_broker
from hibiki_devstack.stack import ServiceSpec, Stack
from hibiki_reporting.domain.calendar import TOKYO, BusinessCalendar, report_date
from hibiki_reporting.domain.finalization import FinalizationSchedule
from hibiki_runtime.events import ALL_TOPICS
from hibiki_runtime.kafka import ensure_topics
from hibiki_runtime.phone import to_e164
from selenium import webdriver
from selenium.webdriver import ChromeOptions
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait
from yarl import URL

from services.reporting.tests.reporting_events import (
    EXPECTED,
    EXPECTED_FUNNEL,
    EXPECTED_HOURLY,
    SHOP,
    SUPPORT,
    recorded_sequence,
)
from tests.integration.conftest import TENANT, start_service
from tests.integration.kafka_io import produce

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "images" / "report-page.png"
# Two days ending yesterday, 10:00 in Tokyo: inside retention, and the page's own default range.
DAY1 = datetime.combine(
    report_date(datetime.now(UTC)) - timedelta(days=2), datetime.min.time(), TOKYO
).replace(hour=10)
DAY2 = DAY1 + timedelta(days=1)
SESSION_COOKIE = "hibiki_report_session"


def expected_rows() -> dict[tuple[str, str], tuple[int, ...]]:
    """(date, dialed number) → the page's figures: calls … undelivered, rejected (all reasons), failed."""
    rows = {}
    for (offset, dialed), (*counts, rejected, failed) in EXPECTED.items():
        day = (DAY1.date() + timedelta(days=offset)).isoformat()
        rows[day, dialed] = (*counts, sum(rejected.values()), failed)
    return rows


@pytest.fixture(scope="module")
async def broker(work_dir: Path) -> AsyncIterator[Broker]:
    with kafka_broker(free_port(), work_dir / "report-page-broker.log") as running:
        await ensure_topics(running.bootstrap_servers, ALL_TOPICS, partitions=3)
        yield running


@pytest.fixture(scope="module")
def own_stack(work_dir: Path, broker: Broker, stack: Stack) -> Iterator[Stack]:
    own = Stack(
        work_dir / "report-page-logs",
        {**stack.base_env, "HIBIKI_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers},
        say=lambda _line: None,
    )
    yield own
    own.stop()


@pytest.fixture(scope="module")
async def reporting(own_stack: Stack, postgres: Postgres, broker: Broker) -> ServiceSpec:
    """A reporting process that has ingested the recorded sequence (checked through its gRPC API)."""
    spec = start_service(own_stack, postgres, "reporting", "hibiki_reporting")
    records = recorded_sequence(TENANT, DAY1)
    for topic in ("call.events", "call.actions", "sms.requests", "sms.results"):
        await produce(broker.bootstrap_servers, topic, [(key, msg) for t, key, msg in records if t == topic])
    day_range = pb.DateRange(start_date=DAY1.date().isoformat(), end_date=DAY2.date().isoformat())
    async with grpc.aio.insecure_channel(f"127.0.0.1:{spec.grpc_port}") as channel:
        stub = pb_grpc.ReportServiceStub(channel)
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            reply = await stub.GetDailyReport(
                pb.GetDailyReportRequest(range=day_range),
                metadata=(("authorization", "Bearer token-a-viewer"),),
            )
            figures = {
                (row.date, row.dialed_number): (
                    row.calls, row.abandoned_calls, row.sms_requested, row.sms_accepted, row.sms_delivered,
                    row.sms_undelivered, sum(r.count for r in row.sms_rejected), row.sms_failed,
                )
                for row in reply.rows
            }  # fmt: skip
            if figures == expected_rows():  # every recorded event is in
                break
            await asyncio.sleep(0.5)
    return spec


def base_url(spec: ServiceSpec) -> str:
    return f"http://127.0.0.1:{spec.http_port}"


async def login(http: aiohttp.ClientSession, url: str, token: str) -> aiohttp.ClientResponse:
    async with http.get(f"{url}/reports/login") as form:
        assert form.status == 200
    csrf = http.cookie_jar.filter_cookies(URL(f"{url}/reports/"))["hibiki_report_login"].value
    return await http.post(f"{url}/reports/login", data={"token": token, "csrf": csrf}, allow_redirects=False)


def new_session() -> aiohttp.ClientSession:
    # unsafe: the jar keeps cookies of IP-address hosts such as 127.0.0.1.
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def test_page_needs_a_login_with_a_strict_http_only_cookie(reporting: ServiceSpec) -> None:
    url = base_url(reporting)
    async with new_session() as http:
        async with http.get(f"{url}/reports/", allow_redirects=False) as anonymous:
            assert (anonymous.status, anonymous.headers["Location"]) == (303, "/reports/login")
        async with http.post(f"{url}/reports/login", data={"token": "token-a-viewer"}) as no_csrf:
            assert no_csrf.status == 403
        async with await login(http, url, "not-a-token") as wrong:
            assert wrong.status == 401
            assert "トークンが正しくありません" in await wrong.text()
        async with await login(http, url, "token-platform") as platform:
            assert platform.status == 401  # service tokens do not open the page
        async with await login(http, url, "token-a-viewer") as ok:
            assert (ok.status, ok.headers["Location"]) == (303, "/reports/")
            cookie = next(v for v in ok.headers.getall("Set-Cookie") if v.startswith(SESSION_COOKIE))
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/reports" in cookie
        async with http.get(f"{url}/reports/") as page:
            html = await page.text()
            assert page.status == 200 and "tenant-a" in html
            assert "script" not in html.lower()  # server-rendered, no scripts, no external resources
            assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
            assert "default-src 'none'" in page.headers["Content-Security-Policy"]
        trace = {"caller_number": "090-1234-5678", "trace_from": DAY1.date().isoformat()}
        async with http.post(f"{url}/reports/trace", data=trace) as forged:
            assert forged.status == 403  # no form token
        async with http.get(f"{url}/reports/?from=2026-13-01&to=x") as bad_range:
            assert bad_range.status == 400
            assert "expected a date YYYY-MM-DD" in await bad_range.text()
        async with http.get(f"{url}/reports/daily.csv?from={DAY1.date()}&to={DAY2.date()}") as download:
            assert download.status == 200  # the CSV route accepts the session cookie
            assert download.headers["Content-Type"].startswith("text/csv")
            assert (await download.read()).decode("utf-8-sig").startswith("日付,着信番号")


async def test_another_tenant_sees_none_of_tenant_a(reporting: ServiceSpec) -> None:
    url = base_url(reporting)
    async with new_session() as http:
        async with await login(http, url, "token-b-operator") as ok:
            assert ok.status == 303
        async with http.get(f"{url}/reports/?from={DAY1.date()}&to={DAY2.date()}") as page:
            html = await page.text()
        assert 'id="no-rows"' in html and SHOP not in html
        async with http.get(f"{url}/reports/daily.csv?from={DAY1.date()}&to={DAY2.date()}") as download:
            rows = list(csv.reader(io.StringIO((await download.read()).decode("utf-8-sig"))))
        assert len(rows) == 1  # the header only


def chromium() -> tuple[ChromeOptions, Service]:
    """Options and driver service for Debian's chromium (see notes/stack-findings.md)."""
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.fail("chromium and chromedriver are missing: run scripts/install-browser.sh (make test does)")
    options = ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,2000"):
        options.add_argument(argument)
    return options, Service(driver)


def submit(browser: webdriver.Chrome, button_id: str) -> None:
    """Click a form's button and wait until the next page replaced this one (a click does not wait)."""
    page = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.ID, button_id).click()
    WebDriverWait(browser, 15).until(expected_conditions.staleness_of(page))


def attribute(element: WebElement, name: str) -> str:
    value = element.get_attribute(name)
    assert value is not None, f"element without {name}"
    return value


def wait_for_file(directory: Path, pattern: str, within_seconds: float = 20) -> Path:
    deadline = time.monotonic() + within_seconds
    while time.monotonic() < deadline:
        done = [p for p in directory.glob(pattern) if not p.name.endswith(".crdownload")]
        if done:
            return done[0]
        time.sleep(0.2)
    raise AssertionError(f"no {pattern} downloaded to {directory}")


async def test_browser_logs_in_picks_a_range_downloads_the_csv_and_traces_a_caller(
    reporting: ServiceSpec, tmp_path: Path
) -> None:
    options, service = chromium()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    url = base_url(reporting)
    browser = webdriver.Chrome(options=options, service=service)
    try:
        browser.get(f"{url}/reports/")
        assert browser.current_url.endswith("/reports/login")
        browser.find_element(By.ID, "token").send_keys("token-a-viewer")
        submit(browser, "login")
        assert browser.find_element(By.ID, "tenant").text == TENANT
        assert "90日間" in browser.find_element(By.ID, "retention").text

        # Pick the two recorded days (date inputs take their value in ISO form).
        for field, day in (("from", DAY1.date()), ("to", DAY2.date())):
            browser.execute_script(
                "arguments[0].value = arguments[1]", browser.find_element(By.ID, field), str(day)
            )
        submit(browser, "show")
        shown = {}
        finals = {}
        for row in browser.find_elements(By.CSS_SELECTOR, "#daily tbody tr"):
            key = (attribute(row, "data-date"), attribute(row, "data-dialed"))
            cells = ("calls", "abandoned_calls", "sms_requested", "sms_accepted", "sms_delivered",
                     "sms_undelivered", "sms_rejected", "sms_failed")  # fmt: skip
            shown[key] = tuple(
                int(row.find_element(By.CSS_SELECTOR, f"td.{cell}").text.split()[0]) for cell in cells
            )
            finals[key[0]] = row.find_element(By.CSS_SELECTOR, "td.status").text
        assert shown == expected_rows()
        final_through = FinalizationSchedule(BusinessCalendar()).final_through(datetime.now(UTC))
        assert finals == {
            day: "確定" if datetime.fromisoformat(day).date() <= final_through else "速報" for day in finals
        }
        bars = {
            (attribute(group, "data-route"), attribute(bar, "data-kind")): int(attribute(bar, "data-value"))
            for group in browser.find_elements(By.CSS_SELECTOR, "#funnel g.route")
            for bar in group.find_elements(By.CSS_SELECTOR, "rect.bar")
        }
        assert {
            route: tuple(bars[route, kind] for kind in ("reached", "invalid_inputs", "timeouts", "abandoned"))
            for route, _ in bars
        } == EXPECTED_FUNNEL

        browser.find_element(By.ID, "csv-download").click()
        downloaded = wait_for_file(downloads, "report_*.csv")
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                f"{url}/reports/daily.csv",
                params={"from": str(DAY1.date()), "to": str(DAY2.date()), "encoding": "utf-8"},
                headers={"Authorization": "Bearer token-a-viewer"},
            ) as reply,
        ):
            assert downloaded.read_bytes() == await reply.read()
        table = list(csv.DictReader(io.StringIO(downloaded.read_text(encoding="utf-8-sig"))))
        assert {(row["日付"], to_e164(row["着信番号"])): int(row["着信数"]) for row in table} == {
            key: value[0] for key, value in expected_rows().items()
        }
        # The call history, one line per call, through the page's session as well.
        browser.find_element(By.ID, "calls-csv-download").click()
        history = list(
            csv.DictReader(io.StringIO(wait_for_file(downloads, "calls_*.csv").read_text("utf-8-sig")))
        )
        assert len(history) == sum(value[0] for value in expected_rows().values())

        # The "SMS did not arrive" checklist for the caller of the first day.
        browser.find_element(By.ID, "caller_number").send_keys("090-1234-5678")
        for field, day in (("trace_from", DAY1.date()), ("trace_to", DAY1.date())):
            browser.execute_script(
                "arguments[0].value = arguments[1]", browser.find_element(By.ID, field), str(day)
            )
        submit(browser, "trace")
        result = browser.find_element(By.ID, "trace-result")
        assert attribute(result, "data-verdict") == "sms_pending"  # req-k, the latest, has no result yet
        calls = [attribute(a, "data-call") for a in result.find_elements(By.CSS_SELECTOR, "article.call")]
        assert sorted(calls) == ["call-a", "call-b", "call-h", "call-j", "call-k"]
        delivered = result.find_element(By.CSS_SELECTOR, "dl.sms[data-request='req-a']")
        assert (
            "ご予約はこちら https://example.jp/r" in delivered.find_element(By.CSS_SELECTOR, ".content").text
        )
        assert delivered.find_element(By.CSS_SELECTOR, ".result").text.startswith("到達")
        undelivered = result.find_element(By.CSS_SELECTOR, "dl.sms[data-request='req-h']")
        assert undelivered.find_element(By.CSS_SELECTOR, ".result").text.startswith("不達")
        # The report above still shows the chosen range after the search.
        assert len(browser.find_elements(By.CSS_SELECTOR, "#daily tbody tr")) == len(expected_rows())
        assert SUPPORT in browser.find_element(By.ID, "daily").text

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        browser.set_window_size(1280, browser.execute_script("return document.body.scrollHeight") + 40)
        assert browser.save_screenshot(str(SCREENSHOT))
    finally:
        browser.quit()


# A phone: 390 x 844 CSS pixels (e.g. iPhone 12-15).
PHONE_WIDTH, PHONE_HEIGHT = 390, 844
CHART_SERIES = ("calls", "sms-requested", "sms-accepted", "sms-delivered")


def expected_days() -> dict[str, tuple[int, ...]]:
    """Day → calls, SMS requested, accepted, delivered of both dialed numbers: the daily rows added up."""
    days: dict[str, tuple[int, ...]] = {}
    for (offset, _dialed), (calls, _abandoned, requested, accepted, delivered, *_rest) in EXPECTED.items():
        day = (DAY1.date() + timedelta(days=offset)).isoformat()
        before = days.get(day, (0, 0, 0, 0))
        days[day] = tuple(a + b for a, b in zip(before, (calls, requested, accepted, delivered), strict=True))
    return days


def expected_hours(offset: int) -> dict[str, tuple[int, ...]]:
    day = (DAY1.date() + timedelta(days=offset)).isoformat()
    return {f"{day}T{hour:02}:00": EXPECTED_HOURLY.get((offset, hour), (0, 0, 0, 0)) for hour in range(24)}


def chart(browser: webdriver.Chrome) -> tuple[str, dict[str, tuple[int, ...]]]:
    """The chart's granularity and each hour's or day's figures, from its data-* attributes."""
    svg = browser.find_element(By.ID, "activity")
    buckets = {
        attribute(group, "data-bucket"): tuple(int(attribute(group, f"data-{name}")) for name in CHART_SERIES)
        for group in svg.find_elements(By.CSS_SELECTOR, "g.bucket")
    }
    return attribute(svg, "data-granularity"), buckets


def assert_fits_the_phone(browser: webdriver.Chrome) -> None:
    width = browser.execute_script("return window.innerWidth")
    assert width == PHONE_WIDTH
    overflow = browser.execute_script("return document.documentElement.scrollWidth")
    assert overflow <= width, f"the page is {overflow} px wide on a {width} px screen"


def box(browser: webdriver.Chrome, element: WebElement) -> dict[str, float]:
    rect: dict[str, float] = browser.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width};",
        element,
    )
    return rect


async def test_the_page_fits_a_phone_and_charts_calls_and_sms_per_day_and_per_hour(
    reporting: ServiceSpec,
) -> None:
    options, service = chromium()
    url = base_url(reporting)
    browser = webdriver.Chrome(options=options, service=service)
    try:
        browser.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": PHONE_WIDTH, "height": PHONE_HEIGHT, "deviceScaleFactor": 3, "mobile": True},
        )
        browser.get(f"{url}/reports/login")
        assert_fits_the_phone(browser)
        browser.find_element(By.ID, "token").send_keys("token-a-viewer")
        submit(browser, "login")
        browser.get(f"{url}/reports/?from={DAY1.date()}&to={DAY2.date()}")

        assert_fits_the_phone(browser)
        # The daily table scrolls inside its own box instead.
        scroller = browser.find_element(By.ID, "daily-scroll")
        assert scroller.value_of_css_property("overflow-x") in ("auto", "scroll")
        assert browser.execute_script("return arguments[0].scrollWidth > arguments[0].clientWidth", scroller)
        browser.execute_script("arguments[0].scrollLeft = 80", scroller)
        assert browser.execute_script("return arguments[0].scrollLeft", scroller) > 0
        assert box(browser, scroller)["right"] <= PHONE_WIDTH
        # The CSV buttons are on the screen, without scrolling sideways.
        for button in ("csv-download", "csv-download-sjis", "calls-csv-download", "sms-csv-download"):
            rect = box(browser, browser.find_element(By.ID, button))
            assert rect["left"] >= 0 and rect["right"] <= PHONE_WIDTH, (button, rect)
            assert rect["top"] >= 0 and rect["bottom"] <= PHONE_HEIGHT, (button, rect)
        # Both charts scale down to the screen (viewBox, width 100%).
        for svg_id in ("activity", "funnel"):
            svg = browser.find_element(By.ID, svg_id)
            assert (svg.get_dom_attribute("viewBox") or "").startswith("0 0 ")
            rect = box(browser, svg)
            assert rect["left"] >= 0 and rect["right"] <= PHONE_WIDTH and rect["width"] > 200, (svg_id, rect)

        # Per day for the two recorded days: the daily rows' figures, both numbers added up.
        assert chart(browser) == ("day", expected_days())

        # Per Asia/Tokyo hour for a one-day range: day 1's calls at 10:00-10:07, day 2's at 00:30.
        for offset, day in ((0, DAY1.date()), (1, DAY2.date())):
            browser.get(f"{url}/reports/?from={day}&to={day}")
            assert chart(browser) == ("hour", expected_hours(offset))
            assert_fits_the_phone(browser)
        # The dialed-number filter: day 1 of SUPPORT only.
        browser.get(f"{url}/reports/?from={DAY1.date()}&to={DAY1.date()}&dialed_number={SUPPORT}")
        calls, _abandoned, requested, accepted, delivered, *_rest = EXPECTED[0, SUPPORT]
        hours = expected_hours(0)
        hours[f"{DAY1.date()}T10:00"] = (calls, requested, accepted, delivered)
        assert chart(browser) == ("hour", hours)
        title = browser.find_element(By.ID, "activity-title").get_attribute("textContent")
        assert title == "時間別の着信数・SMS送信依頼数・送信完了・到達"

        # Errors are Japanese pages that fit the phone too.
        browser.get(f"{url}/reports/no-such-page")
        assert browser.find_element(By.ID, "error-page").get_attribute("data-status") == "404"
        assert "ページが見つかりません" in browser.find_element(By.TAG_NAME, "h1").text
        assert_fits_the_phone(browser)
        browser.get(f"{url}/reports/?from={DAY2.date()}&to={DAY1.date()}")
        assert "終了日は開始日と同じ日か" in browser.find_element(By.ID, "error").text
    finally:
        browser.quit()

"""reporting as a process: a recorded event sequence on the four topics of a real broker, then the daily
report, the caller trace and the CSV downloads compared figure by figure (PostgreSQL underneath).

The module runs its own broker: routing and sms-gateway processes started by other modules react to
call.events and sms.requests, which would change the recorded sequence this test compares against.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hibiki.call.v1 import call_actions_pb2, call_events_pb2
from hibiki.reporting.v1 import report_service_pb2 as pb
from hibiki.reporting.v1 import report_service_pb2_grpc as pb_grpc
from hibiki.sms.v1 import sms_results_pb2
from hibiki_devstack.infra import Broker, Postgres, free_port, kafka_broker
from hibiki_devstack.stack import ServiceSpec, Stack
from hibiki_reporting.domain.calendar import TOKYO, BusinessCalendar, report_date
from hibiki_reporting.domain.finalization import FinalizationSchedule
from hibiki_runtime.events import ALL_TOPICS, CALL_EVENTS, dlq_topic
from hibiki_runtime.kafka import ensure_topics
from hibiki_runtime.phone import to_e164

from services.reporting.tests.reporting_events import (
    CALLER,
    EXPECTED,
    EXPECTED_FUNNEL,
    SHOP,
    SUPPORT,
    Recorder,
    recorded_sequence,
)
from tests.integration.conftest import TENANT, start_service
from tests.integration.kafka_io import produce, read_until

VIEWER = (("authorization", "Bearer token-a-viewer"),)
OPERATOR = (("authorization", "Bearer token-a-operator"),)
OTHER_TENANT = (("authorization", "Bearer token-b-operator"),)
# Yesterday 10:00 in Tokyo, so that both recorded days lie within retention and the second is today.
DAY1 = datetime.combine(
    report_date(datetime.now(UTC)) - timedelta(days=1), datetime.min.time(), TOKYO
).replace(hour=10)


@pytest.fixture(scope="module")
async def broker(work_dir: Path) -> AsyncIterator[Broker]:
    with kafka_broker(free_port(), work_dir / "reporting-broker.log") as running:
        await ensure_topics(running.bootstrap_servers, ALL_TOPICS, partitions=3)
        yield running


@pytest.fixture(scope="module")
def own_stack(work_dir: Path, broker: Broker, stack: Stack) -> Iterator[Stack]:
    """The processes of this module, on this module's broker (tokens and data dir as in the shared stack)."""
    own = Stack(
        work_dir / "reporting-logs",
        {**stack.base_env, "HIBIKI_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers},
        say=lambda _line: None,
    )
    yield own
    own.stop()


@pytest.fixture(scope="module")
def reporting(own_stack: Stack, postgres: Postgres) -> ServiceSpec:
    return start_service(own_stack, postgres, "reporting", "hibiki_reporting")


@pytest.fixture(scope="module")
async def client(reporting: ServiceSpec) -> AsyncIterator[pb_grpc.ReportServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{reporting.grpc_port}") as channel:
        yield pb_grpc.ReportServiceStub(channel)


def whole_range() -> pb.DateRange:
    return pb.DateRange(
        start_date=DAY1.date().isoformat(), end_date=(DAY1.date() + timedelta(days=1)).isoformat()
    )


def figures(row: pb.DailyReportRow) -> tuple:
    rejected = {
        sms_results_pb2.RejectReason.Name(r.reason).removeprefix("REJECT_REASON_").lower(): r.count
        for r in row.sms_rejected
    }
    return (
        row.calls, row.abandoned_calls, row.sms_requested, row.sms_accepted, row.sms_delivered,
        row.sms_undelivered, rejected, row.sms_failed,
    )  # fmt: skip


async def daily_figures(
    client: pb_grpc.ReportServiceStub, metadata: tuple[tuple[str, str], ...]
) -> dict[tuple[str, str], tuple]:
    reply = await client.GetDailyReport(pb.GetDailyReportRequest(range=whole_range()), metadata=metadata)
    return {(row.date, row.dialed_number): figures(row) for row in reply.rows}


def expected_report() -> dict[tuple[str, str], tuple]:
    return {
        ((DAY1.date() + timedelta(days=offset)).isoformat(), dialed): value
        for (offset, dialed), value in EXPECTED.items()
    }


@pytest.fixture(scope="module")
async def ingested(
    broker: Broker, reporting: ServiceSpec, client: pb_grpc.ReportServiceStub
) -> pb.GetDailyReportResponse:
    records = recorded_sequence(TENANT, DAY1)
    # Reordered (each topic backwards) and partly duplicated.
    for topic in ("sms.results", "call.events", "sms.requests", "call.actions"):
        batch = [(key, message) for t, key, message in reversed(records) if t == topic]
        await produce(broker.bootstrap_servers, topic, batch + batch[::2])
    deadline = time.monotonic() + 45
    while True:
        reply = await client.GetDailyReport(pb.GetDailyReportRequest(range=whole_range()), metadata=VIEWER)
        got = {(row.date, row.dialed_number): figures(row) for row in reply.rows}
        if got == expected_report() or time.monotonic() > deadline:
            return reply
        await asyncio.sleep(0.5)


async def test_daily_report_equals_the_recorded_sequence(ingested: pb.GetDailyReportResponse) -> None:
    got = {(row.date, row.dialed_number): figures(row) for row in ingested.rows}
    assert got == expected_report()
    schedule = FinalizationSchedule(BusinessCalendar())
    final_through = schedule.final_through(datetime.now(UTC))
    assert {row.date: row.final for row in ingested.rows} == {
        day: datetime.fromisoformat(day).date() <= final_through for day, _ in got
    }
    shop_day1 = next(
        r for r in ingested.rows if r.dialed_number == SHOP and r.date == DAY1.date().isoformat()
    )
    assert shop_day1.abandonment_rate == pytest.approx(1 / 6)


async def test_route_funnel(ingested: object, client: pb_grpc.ReportServiceStub) -> None:
    reply = await client.GetRouteFunnel(pb.GetRouteFunnelRequest(range=whole_range()), metadata=OPERATOR)
    assert {
        r.route_id: (r.reached, r.invalid_inputs, r.timeouts, r.abandoned) for r in reply.rows
    } == EXPECTED_FUNNEL
    assert [r.route_name for r in reply.rows] == ["メインメニュー", "予約メニュー"]


async def test_trace_caller_answers_the_checklist(
    ingested: object, client: pb_grpc.ReportServiceStub
) -> None:
    first_day = pb.DateRange(start_date=DAY1.date().isoformat(), end_date=DAY1.date().isoformat())
    reply = await client.TraceCaller(
        pb.TraceCallerRequest(caller_number="090-1234-5678", range=first_day), metadata=VIEWER
    )
    assert reply.verdict == pb.TRACE_VERDICT_SMS_PENDING  # req-k, the latest of that day, has no result yet
    calls = {trace.call.call_id: trace for trace in reply.calls}
    assert sorted(calls) == ["call-a", "call-b", "call-h", "call-j", "call-k"]
    (sms,) = calls["call-a"].sms
    assert (sms.status, sms.reason, sms.carrier) == (
        pb.SMS_STATUS_DELIVERED,
        "DELIVRD",
        sms_results_pb2.CARRIER_DOCOMO,
    )
    assert (sms.snapshot.message_text, sms.snapshot.url) == ("ご予約はこちら", "https://example.jp/r")
    assert [
        (s.route_id, s.digits, s.invalid_attempts, s.timeout_attempts) for s in calls["call-a"].call.path
    ] == [("main", "1", 1, 1)]
    call_b = calls["call-b"].call
    assert (call_b.outcome, call_b.abandoned_route_id, call_b.abandoned_stage) == (
        pb.CALL_OUTCOME_ABANDONED, "main", "invalid_input",
    )  # fmt: skip
    (undelivered,) = calls["call-h"].sms
    assert (undelivered.status, undelivered.reason) == (pb.SMS_STATUS_UNDELIVERED, "UNDELIV")

    both_days = await client.TraceCaller(
        pb.TraceCallerRequest(caller_number=CALLER, range=whole_range()), metadata=VIEWER
    )
    assert both_days.verdict == pb.TRACE_VERDICT_SMS_REJECTED
    assert "非対応キャリア" in both_days.summary
    nobody = await client.TraceCaller(
        pb.TraceCallerRequest(caller_number="+819099990000", range=whole_range()), metadata=VIEWER
    )
    assert nobody.verdict == pb.TRACE_VERDICT_NO_CALL_FOUND
    assert "お電話されていない可能性" in nobody.summary


async def test_tenant_b_cannot_read_tenant_a(ingested: object, client: pb_grpc.ReportServiceStub) -> None:
    report = await client.GetDailyReport(pb.GetDailyReportRequest(range=whole_range()), metadata=OTHER_TENANT)
    assert list(report.rows) == []
    trace = await client.TraceCaller(
        pb.TraceCallerRequest(caller_number=CALLER, range=whole_range()), metadata=OTHER_TENANT
    )
    assert trace.verdict == pb.TRACE_VERDICT_NO_CALL_FOUND
    calls = await client.ListCalls(pb.ListCallsRequest(range=whole_range()), metadata=OTHER_TENANT)
    assert list(calls.calls) == []


async def test_event_of_another_tenant_goes_to_the_dlq(ingested: object, broker: Broker) -> None:
    intruder = Recorder("tenant-b")
    intruder.ended("call-b", DAY1, call_events_pb2.END_REASON_CALLER_HANGUP, 1)
    await produce(
        broker.bootstrap_servers, CALL_EVENTS, [(key, message) for _, key, message in intruder.records]
    )

    dead = await read_until(broker.bootstrap_servers, dlq_topic(CALL_EVENTS), lambda rs: len(rs) >= 1, 30)
    assert len(dead) == 1
    headers = dict(dead[0].headers)
    assert headers["dlq-reason"] == b"cross_tenant"


async def test_list_calls_pages_and_filters(ingested: object, client: pb_grpc.ReportServiceStub) -> None:
    first = await client.ListCalls(pb.ListCallsRequest(range=whole_range(), page_size=5), metadata=VIEWER)
    second = await client.ListCalls(
        pb.ListCallsRequest(range=whole_range(), page_size=5, page_token=first.next_page_token),
        metadata=VIEWER,
    )
    assert len(first.calls) == 5 and len(second.calls) == 4 and second.next_page_token == ""
    abandoned = await client.ListCalls(
        pb.ListCallsRequest(range=whole_range(), outcome=pb.CALL_OUTCOME_ABANDONED), metadata=VIEWER
    )
    assert sorted(c.call_id for c in abandoned.calls) == ["call-b", "call-e"]
    support = await client.ListCalls(
        pb.ListCallsRequest(range=whole_range(), dialed_number=SUPPORT), metadata=VIEWER
    )
    assert sorted(c.call_id for c in support.calls) == ["call-d", "call-e"]


async def test_bad_requests_get_field_errors(
    reporting: ServiceSpec, client: pb_grpc.ReportServiceStub
) -> None:
    bad = pb.DateRange(start_date="2026-13-01", end_date="2026-11-01")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.GetDailyReport(pb.GetDailyReportRequest(range=bad), metadata=VIEWER)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(raised.value)
    assert status is not None
    detail = error_details_pb2.BadRequest()
    status.details[0].Unpack(detail)
    assert [v.field for v in detail.field_violations] == ["range.start_date"]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.GetDailyReport(pb.GetDailyReportRequest(range=whole_range()))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


def parse_csv(text: str) -> dict[tuple[str, str], tuple]:
    rows = list(csv.DictReader(io.StringIO(text)))
    unsupported = "SMS送信不可(非対応キャリア)"
    return {
        (row["日付"], to_e164(row["着信番号"])): (
            int(row["着信数"]), int(row["途中放棄数"]), int(row["SMS送信依頼数"]), int(row["SMS送信完了数"]),
            int(row["SMS到達数"]), int(row["SMS不達数"]),
            {"unsupported_carrier": int(row[unsupported])} if int(row["SMS送信不可数"]) else {},
            int(row["SMS送信失敗数"]),
        )
        for row in rows
    }  # fmt: skip


async def test_csv_over_http_in_cp932_and_utf8_bom(ingested: object, reporting: ServiceSpec) -> None:
    url = f"http://127.0.0.1:{reporting.http_port}/reports/daily.csv"
    query = {"from": DAY1.date().isoformat(), "to": (DAY1.date() + timedelta(days=1)).isoformat()}
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer token-a-viewer"}) as http:
        async with http.get(url, params={**query, "encoding": "cp932"}) as reply:
            assert reply.status == 200
            cp932 = await reply.read()
        async with http.get(url, params={**query, "encoding": "utf-8"}) as reply:
            assert reply.headers["Content-Type"].startswith("text/csv")
            utf8 = await reply.read()
        async with http.get(url, params={**query, "to": "yesterday"}) as reply:
            assert reply.status == 400
            assert "to" in await reply.text()
    async with aiohttp.ClientSession() as anonymous, anonymous.get(url, params=query) as reply:
        assert reply.status == 401

    assert utf8.startswith(b"\xef\xbb\xbf")
    assert parse_csv(cp932.decode("cp932")) == expected_report()
    assert parse_csv(utf8.decode("utf-8-sig")) == expected_report()


async def test_csv_over_grpc_stream(ingested: object, client: pb_grpc.ReportServiceStub) -> None:
    request = pb.ExportCsvRequest(range=whole_range(), encoding=pb.CSV_ENCODING_CP932)
    data = b"".join([chunk.data async for chunk in client.ExportCsv(request, metadata=VIEWER)])
    assert parse_csv(data.decode("cp932")) == expected_report()


async def test_call_and_sms_history_csv_over_http_and_grpc(
    ingested: object, reporting: ServiceSpec, client: pb_grpc.ReportServiceStub
) -> None:
    report = expected_report()
    calls = sum(value[0] for value in report.values())
    sms = sum(value[2] for value in report.values())
    base = f"http://127.0.0.1:{reporting.http_port}/reports"
    query = {"from": DAY1.date().isoformat(), "to": (DAY1.date() + timedelta(days=1)).isoformat()}
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer token-a-viewer"}) as http:
        async with http.get(f"{base}/calls.csv", params=query) as reply:
            assert reply.status == 200 and "calls_" in reply.headers["Content-Disposition"]
            call_rows = list(csv.DictReader(io.StringIO((await reply.read()).decode("utf-8-sig"))))
        async with http.get(f"{base}/sms.csv", params={**query, "encoding": "cp932"}) as reply:
            sms_rows = list(csv.DictReader(io.StringIO((await reply.read()).decode("cp932"))))
        async with http.get(f"{base}/sms.csv", params={**query, "from": "x"}) as reply:
            assert reply.status == 400
    assert len(call_rows) == calls and len({row["通話ID"] for row in call_rows}) == calls
    assert {(row["日付"], to_e164(row["着信番号"])) for row in call_rows} == set(report)
    assert all(not row["着信番号"].startswith(("'", "+")) for row in call_rows)
    assert len(sms_rows) == sms and all(row["状態"] and row["依頼ID"] for row in sms_rows)

    request = pb.ExportCsvRequest(range=whole_range(), kind=pb.CSV_KIND_CALLS)
    data = b"".join([chunk.data async for chunk in client.ExportCsv(request, metadata=VIEWER)])
    assert len(list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))) == calls
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _ in client.ExportCsv(pb.ExportCsvRequest(range=whole_range(), kind=99), metadata=VIEWER):
            pass
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "kind" in str(raised.value.details())


async def test_finalization_status_and_metrics(
    ingested: object, reporting: ServiceSpec, client: pb_grpc.ReportServiceStub
) -> None:
    as_of = datetime(2021, 7, 27, 4, 0, tzinfo=UTC)  # 13:00 JST
    request = pb.GetFinalizationStatusRequest()
    request.as_of.FromDatetime(as_of)
    reply = await client.GetFinalizationStatus(request, metadata=VIEWER)
    assert (reply.final_through_date, reply.next_final_through_date) == ("2021-07-24", "2021-07-26")
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{reporting.http_port}/metrics") as page,
    ):
        metrics = await page.text()
    assert "hibiki_reporting_freshness_seconds" in metrics
    assert "hibiki_reporting_final_through_timestamp_seconds" in metrics


async def test_a_call_the_platform_lost_is_a_platform_failure_not_abandoned(
    ingested: object, broker: Broker, reporting: ServiceSpec, client: pb_grpc.ReportServiceStub
) -> None:
    # The day before the recorded sequence, so that its figures stay as the other tests expect them.
    day0 = DAY1 - timedelta(days=1)
    caller = "+819077776666"
    lost = Recorder(TENANT)
    lost.started("lost-1", day0, SHOP, caller)
    lost.prompt("lost-1", 1, day0 + timedelta(seconds=1), "main")
    lost.lost("lost-1", day0 + timedelta(seconds=40))  # media-gateway's `<call_id>:lost:ended`
    for topic in ("call.events", "call.actions"):
        await produce(broker.bootstrap_servers, topic, [(k, m) for t, k, m in lost.records if t == topic])
    one_day = pb.DateRange(start_date=day0.date().isoformat(), end_date=day0.date().isoformat())
    deadline = time.monotonic() + 30
    while True:
        reply = await client.GetDailyReport(pb.GetDailyReportRequest(range=one_day), metadata=VIEWER)
        if [row.platform_failures for row in reply.rows] == [1] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
    (row,) = reply.rows
    assert (row.calls, row.abandoned_calls, row.platform_failures, row.abandonment_rate) == (1, 0, 1, 0.0)
    listed = await client.ListCalls(
        pb.ListCallsRequest(range=one_day, outcome=pb.CALL_OUTCOME_PLATFORM_FAILURE), metadata=VIEWER
    )
    assert [(c.call_id, c.end_reason, c.abandoned_stage) for c in listed.calls] == [
        ("lost-1", "platform_failure", "")
    ]
    trace = await client.TraceCaller(
        pb.TraceCallerRequest(caller_number=caller, range=one_day), metadata=VIEWER
    )
    assert "システム障害により通話が切断されました" in trace.summary
    url = f"http://127.0.0.1:{reporting.http_port}/reports/daily.csv"
    query = {"from": one_day.start_date, "to": one_day.end_date, "encoding": "cp932"}
    async with (
        aiohttp.ClientSession(headers={"Authorization": "Bearer token-a-viewer"}) as http,
        http.get(url, params=query) as csv_reply,
    ):
        (exported,) = csv.DictReader(io.StringIO((await csv_reply.read()).decode("cp932")))
    assert (exported["途中放棄数"], exported["通話切断(システム障害)数"]) == ("0", "1")


async def test_every_wrong_key_counts_and_a_hang_up_during_number_capture_is_a_figure_of_its_own(
    ingested: object, broker: Broker, reporting: ServiceSpec, client: pb_grpc.ReportServiceStub
) -> None:
    # Two days before the recorded sequence (and before the lost call's day): their figures stay as expected.
    day = DAY1 - timedelta(days=2)
    landline = "+81612340000"  # cannot receive SMS: the SMS route asks for a mobile number
    hangup = call_events_pb2.END_REASON_CALLER_HANGUP
    s = Recorder(TENANT)
    # 7, 8, 0 at the main menu (limit 3) → its fallback node, the sub menu (routing marks that prompt).
    s.started("fb-1", day, SHOP)
    for step, key in ((1, "7"), (2, "8"), (3, "0")):
        s.prompt(
            "fb-1", step, day + timedelta(seconds=step), "main", reason=1 if step == 1 else 2, inv=step - 1
        )
        s.digits("fb-1", step, day + timedelta(seconds=step + 1), key)
    s.prompt("fb-1", 4, day + timedelta(seconds=5), "sub")
    s.records[-1][2].fallback = call_actions_pb2.FALLBACK_CAUSE_INVALID_INPUT  # type: ignore[attr-defined]
    s.ended("fb-1", day + timedelta(seconds=9), hangup, 4)
    # 1 = SMS; asked for a mobile number (number capture), the caller hangs up.
    s.started("cap-1", day + timedelta(seconds=60), SHOP, landline)
    s.prompt("cap-1", 1, day + timedelta(seconds=61), "main")
    s.digits("cap-1", 1, day + timedelta(seconds=65), "1")
    capture = call_actions_pb2.PlayAndCollect(
        route_id="sms", route_name="SMS送信", reason=1, input_kind=call_actions_pb2.INPUT_KIND_MOBILE_NUMBER
    )
    s.action("cap-1", 2, day + timedelta(seconds=65), "play_and_collect", capture)
    s.ended("cap-1", day + timedelta(seconds=80), hangup, 2)
    for topic in ("call.events", "call.actions"):
        await produce(broker.bootstrap_servers, topic, [(k, m) for t, k, m in s.records if t == topic])
    one_day = pb.DateRange(start_date=day.date().isoformat(), end_date=day.date().isoformat())
    deadline = time.monotonic() + 30
    while True:
        reply = await client.GetDailyReport(pb.GetDailyReportRequest(range=one_day), metadata=VIEWER)
        done = [(r.calls, r.abandoned_in_number_capture) for r in reply.rows] == [(2, 1)]
        if done or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
    (row,) = reply.rows
    assert (row.calls, row.abandoned_calls, row.abandoned_in_number_capture) == (2, 2, 1)
    funnel = await client.GetRouteFunnel(pb.GetRouteFunnelRequest(range=one_day), metadata=VIEWER)
    assert {r.route_id: (r.reached, r.invalid_inputs, r.timeouts, r.abandoned) for r in funnel.rows} == {
        "main": (2, 3, 0, 0),  # the third wrong key is counted although the menu fell back to a node
        "sub": (1, 0, 0, 1),
        "sms": (1, 0, 0, 1),
    }
    listed = await client.ListCalls(
        pb.ListCallsRequest(range=one_day, outcome=pb.CALL_OUTCOME_ABANDONED_IN_NUMBER_CAPTURE),
        metadata=VIEWER,
    )
    assert [(c.call_id, c.abandoned_route_id, c.abandoned_stage) for c in listed.calls] == [
        ("cap-1", "sms", "number_capture")
    ]
    trace = await client.TraceCaller(
        pb.TraceCallerRequest(caller_number=landline, range=one_day), metadata=VIEWER
    )
    assert "携帯電話番号の入力中" in trace.summary and "選ばれていない" not in trace.summary
    url = f"http://127.0.0.1:{reporting.http_port}/reports/daily.csv"
    query = {"from": one_day.start_date, "to": one_day.end_date, "encoding": "cp932"}
    async with (
        aiohttp.ClientSession(headers={"Authorization": "Bearer token-a-viewer"}) as http,
        http.get(url, params=query) as csv_reply,
    ):
        (exported,) = csv.DictReader(io.StringIO((await csv_reply.read()).decode("cp932")))
    assert (exported["途中放棄数"], exported["途中放棄数(携帯番号入力中)"]) == ("2", "1")


async def test_killed_mid_ingestion_the_restarted_service_reports_exactly(
    ingested: object,
    broker: Broker,
    reporting: ServiceSpec,
    own_stack: Stack,
    client: pb_grpc.ReportServiceStub,
) -> None:
    # Runs last: it restarts the service. Tenant B's copy of the sequence, with its own ids.
    records = recorded_sequence("tenant-b", DAY1, prefix="b-")
    for topic in ("call.events", "call.actions", "sms.requests", "sms.results"):
        await produce(broker.bootstrap_servers, topic, [(k, m) for t, k, m in records if t == topic])
    deadline = time.monotonic() + 30
    while not await daily_figures(client, OTHER_TENANT):
        assert time.monotonic() < deadline, "nothing of tenant B was ingested"
        await asyncio.sleep(0.1)
    (running,) = [s for s in own_stack.services if s.spec.name == "reporting" and s.process.poll() is None]
    running.process.kill()  # SIGKILL: no graceful shutdown, whatever batch is in flight is lost
    running.process.wait()
    own_stack.wait_healthy([own_stack.start(reporting)], timeout=90)

    async with grpc.aio.insecure_channel(f"127.0.0.1:{reporting.grpc_port}") as channel:
        restarted = pb_grpc.ReportServiceStub(channel)
        deadline = time.monotonic() + 60
        while (got := await daily_figures(restarted, OTHER_TENANT)) != expected_report():
            assert time.monotonic() < deadline, got
            await asyncio.sleep(0.5)
        assert await daily_figures(restarted, VIEWER) == expected_report()

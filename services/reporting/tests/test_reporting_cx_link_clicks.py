"""Short-link clicks: folded into the SMS record, reported per box and day, and shown in the caller trace."""

from __future__ import annotations

from datetime import timedelta

from hibiki.sms.v1 import sms_results_pb2 as results
from hibiki_reporting.domain.facts import LinkClicked, SmsStatus
from hibiki_reporting.domain.link_clicks import LinkClickRow
from hibiki_reporting.domain.sms import materialize_sms
from hibiki_reporting.domain.trace import answer_trace
from hibiki_reporting.domain.validation import DayRange
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.reporting.tests.reporting_events import CALLER, SHOP, SNAPSHOT, Recorder
from services.reporting.tests.reporting_recorded import DAY1, SMS, at
from services.reporting.tests.test_reporting_ingest import TENANT, feed, ingestor, queries


def test_clicks_count_each_open_once_whatever_the_order_and_the_first_one_is_kept() -> None:
    clicks = [LinkClicked(at(DAY1, 300), 2), LinkClicked(at(DAY1, 100), 1), LinkClicked(at(DAY1, 300), 2)]
    record = materialize_sms("req-a", [*clicks, *SMS["req-a"]])
    assert (record.clicks, record.first_click_time) == (2, at(DAY1, 100))
    assert record.status is SmsStatus.DELIVERED  # clicks never change the carrier's status
    assert materialize_sms("req-a", SMS["req-a"]).clicks == 0


def test_a_click_seen_before_anything_else_keeps_the_record_requested() -> None:
    record = materialize_sms("req-x", [LinkClicked(at(DAY1, 5), 1)])
    assert (record.status, record.clicks) == (SmsStatus.REQUESTED, 1)


def test_click_through_rate_is_opened_over_accepted() -> None:
    assert LinkClickRow(DAY1.date(), "001", 4, 1, 3).click_through_rate == 0.25
    assert LinkClickRow(DAY1.date(), "001", 0, 0, 0).click_through_rate == 0.0


def clicked(recorder: Recorder, request_id: str, number: int, seconds: int) -> None:
    body = results.SmsLinkClicked(
        click_number=number, url=SNAPSHOT.url, short_link="https://s.example.jp/s/x"
    )
    recorder.sms_result(request_id, at(DAY1, seconds), "sms_link_clicked", body)
    # sms_result names event ids after the body; each open has its own id like sms-gateway's.
    message = recorder.records[-1][2]
    message.envelope.event_id = f"{request_id}:clicked:{number}"  # type: ignore[attr-defined]


async def test_clicks_reach_the_link_report_and_the_trace(sessions: async_sessionmaker[AsyncSession]) -> None:
    recorder = Recorder(TENANT)
    accepted = results.SmsAccepted(carrier=results.CARRIER_DOCOMO, snapshot=SNAPSHOT, reason="accepted")
    for call, request in (("c1", "r1"), ("c2", "r2"), ("c3", "r3")):
        recorder.sms_call(call, request, DAY1, SHOP)
        recorder.sms_result(request, at(DAY1, 12), "sms_accepted", accepted)
    clicked(recorder, "r1", 1, 60)
    clicked(recorder, "r1", 2, 90)
    clicked(recorder, "r2", 1, 120)
    duplicate = recorder.records[-1]
    assert await feed(ingestor(sessions), [*recorder.records, duplicate]) == []

    days = DayRange(DAY1.date(), DAY1.date() + timedelta(days=1))
    (row,) = await queries(sessions).link_clicks(TENANT, days)
    assert row == LinkClickRow(DAY1.date(), "001", 3, 2, 3)
    assert abs(row.click_through_rate - 2 / 3) < 1e-9
    trace = await queries(sessions).trace_caller(TENANT, CALLER, days)
    first = {sms.request_id: (sms.clicks, sms.first_click_time) for call in trace.calls for sms in call.sms}
    assert first == {"r1": (2, at(DAY1, 60)), "r2": (1, at(DAY1, 120)), "r3": (0, None)}


def test_the_trace_summary_names_the_first_click() -> None:
    record = materialize_sms("req-a", [*SMS["req-a"], LinkClicked(at(DAY1, 3600), 1)])
    answer = answer_trace([], [record])
    assert "2026-11-09 11:00にSMSのリンクが開かれています（計1回）" in answer.summary

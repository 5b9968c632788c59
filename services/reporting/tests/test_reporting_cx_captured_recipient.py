"""An SMS sent to a number the caller keyed in is marked in the SMS record, the trace and the report."""

from __future__ import annotations

from datetime import timedelta

from hibiki.sms.v1 import sms_results_pb2 as results
from hibiki_reporting.domain.validation import DayRange
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.reporting.tests.reporting_events import SHOP, SNAPSHOT, Recorder
from services.reporting.tests.reporting_recorded import DAY1, at
from services.reporting.tests.test_reporting_ingest import TENANT, feed, ingestor, queries

LANDLINE_CALLER = "+81612345678"
KEYED_MOBILE = "+819087654321"


async def test_the_trace_of_a_landline_caller_shows_the_sms_went_to_the_keyed_number(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    recorder = Recorder(TENANT)
    recorder.started("cap", DAY1, SHOP, caller=LANDLINE_CALLER)
    recorder.prompt("cap", 1, at(DAY1, 1), "main")
    recorder.digits("cap", 1, at(DAY1, 5), "1")
    recorder.sms_requested("cap:2", "cap", at(DAY1, 30), SHOP, recipient=KEYED_MOBILE)
    recorder.records[-1][2].sms_requested.recipient_captured = True  # type: ignore[attr-defined]
    accepted = results.SmsAccepted(carrier=results.CARRIER_DOCOMO, snapshot=SNAPSHOT, reason="accepted")
    recorder.sms_result("cap:2", at(DAY1, 31), "sms_accepted", accepted)
    assert await feed(ingestor(sessions), recorder.records) == []

    days = DayRange(DAY1.date(), DAY1.date() + timedelta(days=1))
    trace = await queries(sessions).trace_caller(TENANT, LANDLINE_CALLER, days)
    (call,) = trace.calls
    (sms,) = call.sms
    assert (sms.recipient, sms.recipient_captured) == (KEYED_MOBILE, True)
    assert "お客様が入力した携帯電話番号宛て" in trace.answer.summary
    (row,) = await queries(sessions).daily_report(TENANT, days)
    assert (row.sms_requested, row.sms_requested_to_captured_number) == (1, 1)

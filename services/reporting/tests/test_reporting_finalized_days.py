"""Final days (確定) keep their figures: late results show beside them, never in them."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from hibiki.sms.v1 import sms_results_pb2 as results
from hibiki_reporting.domain.calendar import TOKYO, BusinessCalendar
from hibiki_reporting.domain.csv_export import HEADERS, CsvEncoding
from hibiki_reporting.domain.facts import SmsStatus
from hibiki_reporting.domain.figures import DailyFigures, with_finalization
from hibiki_reporting.domain.finalization import FinalizationSchedule
from hibiki_reporting.domain.sms import as_of, materialize_sms
from hibiki_reporting.domain.validation import DayRange
from hibiki_reporting.service_layer.export import csv_chunks
from hibiki_reporting.service_layer.queries import ReportQueries

from services.reporting.tests.reporting_events import SHOP, SNAPSHOT, Recorder
from services.reporting.tests.reporting_recorded import DAY1, SMS, at
from services.reporting.tests.test_reporting_ingest import TENANT, feed, ingestor

FINAL_DAY = datetime(2026, 11, 9, 10, 0, tzinfo=TOKYO)  # Monday
OPEN_DAY = FINAL_DAY + timedelta(days=2)
NOW = datetime(2026, 11, 11, 13, 5, tzinfo=TOKYO)  # Wednesday 13:05: final through Monday 11-09
DAYS = DayRange(FINAL_DAY.date(), OPEN_DAY.date())


def accepted(recorder: Recorder, request_id: str, at: datetime) -> None:
    body = results.SmsAccepted(carrier=1, snapshot=SNAPSHOT, reason="accepted")
    recorder.sms_result(request_id, at, "sms_accepted", body)


def delivered(recorder: Recorder, request_id: str, at: datetime) -> None:
    body = results.SmsDelivered(carrier=1, snapshot=SNAPSHOT, reason="DELIVRD")
    recorder.sms_result(request_id, at, "sms_delivered", body)


def test_a_final_day_shows_its_frozen_figures_and_what_moved_since() -> None:
    day = date(2026, 11, 9)
    frozen = DailyFigures(day, SHOP, calls=2, sms_requested=2, sms_accepted=2, sms_failed=1, final=True)
    live = DailyFigures(day, SHOP, calls=3, sms_requested=2, sms_accepted=2, sms_delivered=2, sms_failed=0)
    later = DailyFigures(day + timedelta(days=1), SHOP, calls=5)

    (kept, now) = with_finalization([live, later], [frozen], frozen_through=day)

    assert (kept.calls, kept.sms_delivered, kept.sms_failed, kept.final) == (2, 0, 1, True)
    assert kept.changes_after_finalization == {"calls": 1, "sms_delivered": 2, "sms_failed": -1}
    assert now == later and not now.changes_after_finalization
    # Nothing frozen yet (the job has not run): the day is shown as it is.
    assert with_finalization([live], [], frozen_through=None) == [live]
    # A final day that had nothing when frozen and got a late call.
    (late,) = with_finalization([live], [], frozen_through=day)
    assert late.calls == 0 and late.changes_after_finalization["calls"] == 3


async def test_late_results_change_records_but_not_the_final_day(sessions) -> None:
    schedule = FinalizationSchedule(BusinessCalendar())
    assert schedule.final_through(NOW) == FINAL_DAY.date()
    assert schedule.finalized_at(FINAL_DAY.date()) == datetime(2026, 11, 11, 13, 0, tzinfo=TOKYO)
    events = Recorder(TENANT)
    events.sms_call("call-1", "req-1", FINAL_DAY, SHOP)
    accepted(events, "req-1", FINAL_DAY + timedelta(seconds=15))
    events.sms_call("call-2", "req-2", OPEN_DAY, SHOP)
    accepted(events, "req-2", OPEN_DAY + timedelta(seconds=15))
    # A call of the final day whose events reach reporting only now: it happened before the day became
    # final, so it is part of the final figures.
    events.sms_call("call-3", "req-3", FINAL_DAY + timedelta(hours=1), SHOP)
    accepted(events, "req-3", FINAL_DAY + timedelta(hours=1, seconds=15))
    # Late results: the final day's receipts (one days later, one before finalization), the open day's.
    delivered(events, "req-1", NOW - timedelta(minutes=1))
    delivered(events, "req-3", FINAL_DAY + timedelta(hours=2))
    delivered(events, "req-2", NOW - timedelta(minutes=1))
    await feed(ingestor(sessions, now=NOW), events.records)

    report = ReportQueries(sessions, schedule, now=lambda: NOW)
    final, open_day = await report.daily_report(TENANT, DAYS)
    assert (final.day, final.final, final.calls, final.sms_accepted, final.sms_delivered) == (
        FINAL_DAY.date(), True, 2, 2, 1
    )  # fmt: skip
    assert final.changes_after_finalization == {"sms_delivered": 1}
    assert (open_day.final, open_day.calls, open_day.sms_delivered) == (False, 1, 1)
    assert not open_day.changes_after_finalization
    # Asked again later, or for the final day alone, the final figures are the same.
    again = ReportQueries(sessions, schedule, now=lambda: NOW + timedelta(days=30))
    assert (await again.daily_report(TENANT, DayRange(FINAL_DAY.date(), FINAL_DAY.date()))) == [final]

    chunks = [c async for c in csv_chunks(report, TENANT, DAYS, "", CsvEncoding.UTF8_BOM)]
    lines = b"".join(chunks).decode("utf-8-sig").splitlines()
    assert lines[0].endswith(HEADERS[-1]) and HEADERS[-1] == "確定後の変更"
    assert lines[1].endswith(",確定,0,0,SMS到達数 +1")
    assert lines[2].endswith(",速報,0,0,")


def test_an_sms_as_of_a_moment_counts_only_what_had_happened_by_then() -> None:
    record = materialize_sms("req-h", SMS["req-h"])  # requested +311 s, accepted +312 s, undelivered +400 s
    assert record.status is SmsStatus.UNDELIVERED
    assert as_of(record, at(DAY1, 350)).status is SmsStatus.ACCEPTED
    assert as_of(record, at(DAY1, 311)).status is SmsStatus.REQUESTED
    assert as_of(record, at(DAY1, 400)) == record

"""Calls the platform lost (CallEnded reason PLATFORM_FAILURE) are platform failures, never abandoned."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import pytest
from hibiki.call.v1 import call_events_pb2 as events
from hibiki.reporting.v1 import report_service_pb2 as pb
from hibiki_reporting.adapters.events import call_fact
from hibiki_reporting.adapters.tables import END_REASON_LENGTH, call_records
from hibiki_reporting.domain.activity import daily_activity
from hibiki_reporting.domain.calendar import BusinessCalendar
from hibiki_reporting.domain.calls import CallOutcome, materialize_call
from hibiki_reporting.domain.csv_export import HEADERS, PLATFORM_FAILURES_HEADER, CsvEncoding, row_cells
from hibiki_reporting.domain.facts import (
    CallEnded,
    CallFact,
    CallStarted,
    DigitsCollected,
    PromptReason,
    SmsRequestedByCall,
    TargetIssued,
    TargetKind,
)
from hibiki_reporting.domain.figures import CallTally, DailyFigures, daily_figures
from hibiki_reporting.domain.finalization import FinalizationSchedule
from hibiki_reporting.domain.labels import REJECT_REASON_LABELS
from hibiki_reporting.domain.trace import TraceVerdict, answer_trace
from hibiki_reporting.domain.validation import DayRange
from hibiki_reporting.entrypoints.messages import call_message, daily_row, outcome_of
from hibiki_reporting.service_layer.export import csv_chunks
from hibiki_reporting.service_layer.queries import CallTrace, Trace
from hibiki_reporting.web.activity_chart import activity_chart
from hibiki_reporting.web.funnel_chart import funnel_chart
from hibiki_reporting.web.pages import _totals, render
from hibiki_runtime.auth import Principal, Role
from hibiki_runtime.events import CALL_EVENTS
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.reporting.tests.reporting_events import Recorder
from services.reporting.tests.reporting_recorded import CALLER, CALLS, DAY1, SHOP, at, prompt, sms_call
from services.reporting.tests.test_reporting_cx_rejected_calls import rejected_call
from services.reporting.tests.test_reporting_ingest import TENANT, feed, ingestor, queries

LOST = "platform_failure"


def waiting_for_input(call: str) -> list[CallFact]:
    """main menu → wrong digit → the invalid-input guidance waits for the caller's input."""
    return [
        CallStarted(DAY1, SHOP, CALLER),
        prompt(call, 1, at(DAY1, 1), "main", PromptReason.INITIAL),
        DigitsCollected(at(DAY1, 5), f"{call}:1", "9"),
        prompt(call, 2, at(DAY1, 5), "main", PromptReason.INVALID_INPUT, inv=1),
    ]


def test_a_call_lost_while_a_prompt_waits_for_input_is_a_platform_failure_not_abandoned() -> None:
    # media-gateway's lost-call report names no action in progress.
    record = materialize_call("l1", [*waiting_for_input("l1"), CallEnded(at(DAY1, 40), LOST, "")])
    assert record.outcome is CallOutcome.PLATFORM_FAILURE
    assert record.end_reason == LOST
    assert record.abandonment is None
    assert not any(entry.abandoned_here for entry in record.funnel_entries())
    # The same moment ended by the caller is 途中放棄, as before.
    hung_up = materialize_call(
        "l1", [*waiting_for_input("l1"), CallEnded(at(DAY1, 40), "caller_hangup", "l1:2")]
    )
    assert (hung_up.outcome, hung_up.end_reason) == (CallOutcome.ABANDONED, "caller_hangup")


@pytest.mark.parametrize(
    "facts",
    [
        [CallStarted(DAY1, SHOP, CALLER)],  # before the first prompt
        [CallStarted(DAY1, SHOP, CALLER), prompt("l2", 1, at(DAY1, 1), "main", PromptReason.INITIAL)],
        waiting_for_input("l2"),
    ],
    ids=["before the first prompt", "during the first prompt", "during a re-prompt"],
)
@pytest.mark.parametrize("during", ["", "l2:1"], ids=["lost call report", "shutdown with the call up"])
def test_whatever_it_was_waiting_for_a_lost_call_is_never_abandoned(
    facts: list[CallFact], during: str
) -> None:
    record = materialize_call("l2", [*facts, CallEnded(at(DAY1, 40), LOST, during)])
    assert record.outcome is CallOutcome.PLATFORM_FAILURE and record.abandonment is None


def test_a_terminal_target_reached_before_the_loss_keeps_its_outcome() -> None:
    # As for a caller who hangs up after the terminal target: the target decides.
    def lost(facts: list[CallFact]) -> CallOutcome:
        kept = [fact for fact in facts if not isinstance(fact, CallEnded)]
        return materialize_call("x", [*kept, CallEnded(at(DAY1, 600), LOST, "")]).outcome

    assert lost(sms_call("s", DAY1, SHOP, "req-s")) is CallOutcome.SMS_SENT
    assert lost(CALLS["call-c"]) is CallOutcome.TRANSFERRED
    assert lost(CALLS["call-d"]) is CallOutcome.NOT_IN_SERVICE
    announcement = TargetIssued(at(DAY1, 6), 3, "x:3", TargetKind.ANNOUNCEMENT, "main")
    assert lost([*waiting_for_input("x"), announcement]) is CallOutcome.COMPLETED
    # An SMS requested while the prompt was up also counts as reached.
    sms_then_lost = [*waiting_for_input("x"), SmsRequestedByCall(at(DAY1, 9), "req-x", SHOP)]
    assert lost(sms_then_lost) is CallOutcome.SMS_SENT
    # And a rejected caller stays rejected.
    assert lost(rejected_call("x", "rejected_blocklist")) is CallOutcome.REJECTED


@pytest.mark.parametrize("lost_first", [True, False], ids=["lost report first", "lost report later"])
def test_an_end_the_calls_own_process_reported_beats_a_lost_call_report(lost_first: bool) -> None:
    # The process only looked dead (a pause): another one reported the call lost, then the caller hung up.
    report_at, hangup_at = (at(DAY1, 30), at(DAY1, 50)) if lost_first else (at(DAY1, 50), at(DAY1, 30))
    facts = [
        *waiting_for_input("l3"),
        CallEnded(report_at, LOST, ""),
        CallEnded(hangup_at, "caller_hangup", "l3:2"),
    ]
    record = materialize_call("l3", facts)
    assert (record.outcome, record.end_reason, record.end_time) == (
        CallOutcome.ABANDONED,
        "caller_hangup",
        hangup_at,
    )
    assert materialize_call("l3", list(reversed(facts))) == record


def test_end_reasons_are_decoded_and_numbers_this_version_does_not_name_stay_unknown() -> None:
    def ended(reason: int) -> CallEnded:
        message = events.CallEvent(call_id="c", call_ended=events.CallEnded(reason=reason))  # type: ignore[arg-type]
        fact = call_fact(CALL_EVENTS, message)
        assert isinstance(fact, CallEnded)
        return fact

    assert ended(events.END_REASON_PLATFORM_FAILURE).reason == LOST
    assert ended(events.END_REASON_CALLER_HANGUP).reason == "caller_hangup"
    assert ended(99).reason == "unknown"
    # An unknown reason is not a platform failure: a call ended that way while waiting is abandoned.
    record = materialize_call("u", [*waiting_for_input("u"), CallEnded(at(DAY1, 40), "unknown", "u:2")])
    assert (record.outcome, record.end_reason) == (CallOutcome.ABANDONED, "unknown")


def test_every_end_reason_and_outcome_fits_its_column() -> None:
    names = [value.name.removeprefix("END_REASON_").lower() for value in events.EndReason.DESCRIPTOR.values]
    assert max(map(len, [*names, "unknown"])) <= END_REASON_LENGTH
    assert max(len(outcome.value) for outcome in CallOutcome) <= call_records.c.outcome.type.length  # type: ignore[attr-defined]


def day_of_lost_calls() -> DailyFigures:
    records = [
        materialize_call("l4", [*waiting_for_input("l4"), CallEnded(at(DAY1, 40), LOST, "")]),
        materialize_call("l5", [CallStarted(DAY1, SHOP, CALLER), CallEnded(at(DAY1, 2), LOST, "")]),
        materialize_call("r1", rejected_call("r1", "rejected_blocklist")),
        materialize_call("call-b", CALLS["call-b"]),  # abandoned during the invalid-input guidance
        materialize_call("call-a", CALLS["call-a"]),  # SMS sent
        materialize_call("call-e", CALLS["call-e"]),  # abandoned, on the other number
    ]
    rows = daily_figures([CallTally.of(r) for r in records], [], lambda day: False)
    return next(row for row in rows if row.dialed_number == SHOP)


def test_the_daily_figures_count_platform_failures_apart_and_leave_them_out_of_the_rate() -> None:
    row = day_of_lost_calls()
    assert (row.day, row.calls, row.platform_failures, row.rejected_calls, row.abandoned_calls) == (
        date(2026, 11, 9),
        5,
        2,
        1,
        1,
    )
    # Only call-a and call-b could have been abandoned; one was.
    assert row.abandonment_rate == 0.5
    assert daily_row(row).platform_failures == 2
    assert daily_row(row).abandonment_rate == 0.5


def test_the_csv_appends_the_platform_failures_column_after_the_existing_ones() -> None:
    before = [
        "日付", "着信番号", "着信数", "途中放棄数", "途中放棄率(%)", "着信拒否数", "SMS送信依頼数",
        "SMS送信完了数", "SMS到達数", "SMS不達数", "SMS送信不可数",
        *(f"SMS送信不可({label})" for label in REJECT_REASON_LABELS.values()), "SMS送信失敗数", "状態",
    ]  # fmt: skip
    assert list(HEADERS)[: len(before) + 1] == [*before, PLATFORM_FAILURES_HEADER]
    assert PLATFORM_FAILURES_HEADER == "通話切断(システム障害)数"
    PLATFORM_FAILURES_HEADER.encode("cp932")  # Shift_JIS users can read it
    cells = dict(zip(HEADERS, row_cells(day_of_lost_calls()), strict=True))
    assert (
        cells["着信数"],
        cells["途中放棄数"],
        cells["途中放棄率(%)"],
        cells[PLATFORM_FAILURES_HEADER],
    ) == (
        5,
        1,
        "50.0",
        2,
    )


def test_the_trace_says_a_lost_call_was_cut_off_by_a_system_failure() -> None:
    lost = materialize_call("l6", [*waiting_for_input("l6"), CallEnded(at(DAY1, 40), LOST, "")])
    answer = answer_trace([lost], [])
    assert answer.verdict is TraceVerdict.NO_SMS_REQUESTED
    assert "システム障害により通話が切断されました" in answer.summary
    assert "番号を選ばれていない" not in answer.summary
    mixed = answer_trace([lost, materialize_call("call-b", CALLS["call-b"])], [])
    assert "うち1件はシステム障害により通話が切断されました" in mixed.summary
    assert "番号を選ばれていない" in mixed.summary
    plain = answer_trace([materialize_call("call-b", CALLS["call-b"])], [])
    assert "システム障害" not in plain.summary


def test_the_report_page_shows_the_figure_and_the_outcome() -> None:
    row = day_of_lost_calls()
    lost = materialize_call("l8", [*waiting_for_input("l8"), CallEnded(at(DAY1, 40), LOST, "")])
    page = render(
        "report.html",
        principal=Principal(TENANT, Role.VIEWER),
        days=DayRange(DAY1.date(), DAY1.date()),
        dialed="",
        rows=[row],
        totals=_totals([row]),
        funnel=funnel_chart([]),
        activity=activity_chart(daily_activity(DayRange(DAY1.date(), DAY1.date()), [row])),
        finalization=FinalizationSchedule(BusinessCalendar()).status(DAY1),
        csv_utf8="/reports/daily.csv",
        csv_cp932="/reports/daily.csv",
        calls_csv="/reports/calls.csv",
        sms_csv="/reports/sms.csv",
        csrf="token",
        trace=Trace(answer_trace([lost], []), [CallTrace(lost, [])]),
        verdict_step="①",
        caller=CALLER,
        trace_from="",
        trace_to="",
        trace_error="",
    ).text
    assert page is not None
    assert "<th" in page and "システム障害で切断</th>" in page
    assert '<td class="num platform_failures">2</td>' in page
    assert f"{SHOP} — システム障害で切断" in page
    assert "システム障害により通話が切断されました" in page


def test_the_api_names_the_outcome_and_the_end_reason() -> None:
    record = materialize_call("l7", [*waiting_for_input("l7"), CallEnded(at(DAY1, 40), LOST, "")])
    message = call_message(record)
    assert (message.outcome, message.end_reason) == (pb.CALL_OUTCOME_PLATFORM_FAILURE, LOST)
    assert (message.abandoned_route_id, message.abandoned_stage) == ("", "")
    assert outcome_of(pb.CALL_OUTCOME_PLATFORM_FAILURE) is CallOutcome.PLATFORM_FAILURE


async def test_a_lost_call_through_the_consumers_and_the_database(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    recorder = Recorder(TENANT)
    recorder.started("gw-1", DAY1, SHOP)
    recorder.prompt("gw-1", 1, at(DAY1, 1), "main")
    recorder.digits("gw-1", 1, at(DAY1, 5), "9")
    recorder.prompt("gw-1", 2, at(DAY1, 5), "main", reason=2, inv=1)
    recorder.lost("gw-1", at(DAY1, 45))
    recorder.sms_call("gw-2", "req-2", at(DAY1, 60), SHOP)
    assert await feed(ingestor(sessions), recorder.records) == []
    assert await feed(ingestor(sessions), recorder.records) == []  # redelivered: counted once

    days = DayRange(DAY1.date(), DAY1.date() + timedelta(days=1))
    report = queries(sessions)
    (row,) = await report.daily_report(TENANT, days)
    assert (row.calls, row.platform_failures, row.abandoned_calls, row.abandonment_rate) == (2, 1, 0, 0.0)
    (lost,) = await report.list_calls(
        TENANT, days, dialed="", caller="", outcome=CallOutcome.PLATFORM_FAILURE, offset=0, limit=10
    )
    assert (lost.call_id, lost.end_reason, lost.abandonment, lost.end_time) == (
        "gw-1",
        LOST,
        None,
        at(DAY1, 45),
    )
    assert [r.abandoned for r in await report.route_funnel(TENANT, days)] == [0]
    (sent,) = await report.list_calls(
        TENANT, days, dialed="", caller="", outcome=CallOutcome.SMS_SENT, offset=0, limit=10
    )
    assert sent.end_reason == "system_hangup"
    chunks = [c async for c in csv_chunks(report, TENANT, days, "", CsvEncoding.UTF8_BOM)]
    (exported,) = csv.DictReader(io.StringIO(b"".join(chunks).decode("utf-8-sig")))
    assert (exported["途中放棄数"], exported[PLATFORM_FAILURES_HEADER]) == ("0", "1")

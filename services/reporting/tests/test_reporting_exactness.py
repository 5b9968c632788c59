"""Exactness: every invalid input of a route is counted, fallback or not; a caller who chose the SMS and hung
up while keying in a mobile number is abandoned during number capture, not a caller who did not choose SMS."""

from __future__ import annotations

from hibiki.call.v1 import call_actions_pb2 as actions
from hibiki.call.v1 import call_events_pb2 as events
from hibiki.reporting.v1 import report_service_pb2 as pb
from hibiki_reporting.adapters.events import call_fact
from hibiki_reporting.domain.calls import (
    AbandonedStage,
    CallOutcome,
    CallRecord,
    RouteFunnelEntry,
    materialize_call,
)
from hibiki_reporting.domain.csv_export import HEADERS, NUMBER_CAPTURE_ABANDONED_HEADER, row_cells
from hibiki_reporting.domain.figures import CallTally, daily_figures
from hibiki_reporting.domain.trace import TraceVerdict, answer_trace
from hibiki_reporting.entrypoints.messages import call_message, daily_row, outcome_of
from hibiki_runtime.events import CALL_ACTIONS, CALL_EVENTS

from services.reporting.tests.reporting_events import SHOP, Recorder, t
from services.reporting.tests.test_reporting_ingest import DAY1, TENANT

INVALID, TIMEOUT = actions.FALLBACK_CAUSE_INVALID_INPUT, actions.FALLBACK_CAUSE_TIMEOUT


def record_of(recorder: Recorder, call_id: str) -> CallRecord:
    facts = [
        fact
        for topic, _, message in recorder.records
        if topic in (CALL_EVENTS, CALL_ACTIONS) and message.call_id == call_id  # type: ignore[attr-defined]
        if (fact := call_fact(topic, message)) is not None
    ]
    return materialize_call(call_id, facts)


def mark_fallback(recorder: Recorder, cause: int) -> None:
    """Routing's mark on the action it just sent: it entered a fallback (CallAction.fallback)."""
    recorder.records[-1][2].fallback = cause  # type: ignore[attr-defined]


def three_wrong_keys(s: Recorder, call: str, start: int = 0) -> int:
    """main menu, 7, 8, 0 (limit 3): returns the step of routing's answer to the third wrong key."""
    s.started(call, t(DAY1, start), SHOP)
    s.prompt(call, 1, t(DAY1, start + 1), "main")
    s.digits(call, 1, t(DAY1, start + 5), "7")
    s.prompt(call, 2, t(DAY1, start + 5), "main", reason=2, inv=1)
    s.digits(call, 2, t(DAY1, start + 9), "8")
    s.prompt(call, 3, t(DAY1, start + 9), "main", reason=2, inv=2)
    s.digits(call, 3, t(DAY1, start + 13), "0")
    return 4


def funnel(records: list[CallRecord]) -> dict[str, tuple[int, int]]:
    """route → (invalid inputs, timeouts), added up over the calls."""
    totals: dict[str, tuple[int, int]] = {}
    for record in records:
        for entry in record.funnel_entries():
            assert isinstance(entry, RouteFunnelEntry)
            invalid, timeouts = totals.get(entry.route_id, (0, 0))
            totals[entry.route_id] = (invalid + entry.invalid_inputs, timeouts + entry.timeouts)
    return totals


# --- 1. invalid inputs are counted when a menu falls back to a node ----------------------------------------


def test_three_wrong_keys_falling_back_to_a_menu_count_three_invalid_inputs() -> None:
    s = Recorder(TENANT)
    step = three_wrong_keys(s, "to-menu")
    s.prompt("to-menu", step, t(DAY1, 13), "sub")
    mark_fallback(s, INVALID)
    s.digits("to-menu", step, t(DAY1, 20), "1")
    s.transfer("to-menu", step + 1, t(DAY1, 20), "sub")
    record = record_of(s, "to-menu")
    assert [(r.route_id, r.digits, r.invalid_attempts) for r in record.path] == [
        ("main", "0", 3),
        ("sub", "1", 0),
    ]
    assert record.outcome is CallOutcome.TRANSFERRED


def test_a_funnel_counts_every_wrong_key_whatever_the_fallback_is() -> None:
    """11 wrong keys, not 9: the limit-reaching key is counted for a fallback menu and announcement too."""
    s = Recorder(TENANT)
    step = three_wrong_keys(s, "to-menu", 0)  # 3, to another menu
    s.prompt("to-menu", step, t(DAY1, 13), "sub")
    mark_fallback(s, INVALID)
    step = three_wrong_keys(s, "to-announcement", 100)  # 3, to an announcement
    s.action("to-announcement", step, t(DAY1, 113), "play", actions.Play(route_id="fallback"))
    mark_fallback(s, INVALID)
    step = three_wrong_keys(s, "hung-up", 200)  # 3, no fallback node: closing guidance and hang-up
    s.hangup("hung-up", step, t(DAY1, 213), "fallback")
    mark_fallback(s, INVALID)
    s.started("two", t(DAY1, 300), SHOP)  # 2, then a valid choice
    s.prompt("two", 1, t(DAY1, 301), "main")
    s.digits("two", 1, t(DAY1, 305), "7")
    s.prompt("two", 2, t(DAY1, 305), "main", reason=2, inv=1)
    s.digits("two", 2, t(DAY1, 309), "7")
    s.prompt("two", 3, t(DAY1, 309), "main", reason=2, inv=2)
    s.digits("two", 3, t(DAY1, 313), "2")
    s.prompt("two", 4, t(DAY1, 313), "sub")
    calls = ("to-menu", "to-announcement", "hung-up", "two")
    assert funnel([record_of(s, call) for call in calls])["main"] == (11, 0)


def test_the_fallback_mark_may_follow_an_sms_request_and_arrive_before_the_prompt_it_answers() -> None:
    s = Recorder(TENANT)
    s.started("c", DAY1, SHOP)
    # Routing's last action arrives first; the SMS request (step 5) is not a call action.
    s.hangup("c", 6, t(DAY1, 13), "completed", route="sms")
    mark_fallback(s, INVALID)
    s.prompt("c", 1, t(DAY1, 1), "main")
    s.digits("c", 1, t(DAY1, 5), "7")
    s.prompt("c", 2, t(DAY1, 5), "main", reason=2, inv=1)
    s.digits("c", 2, t(DAY1, 9), "8")
    s.prompt("c", 3, t(DAY1, 9), "main", reason=2, inv=2)
    s.digits("c", 3, t(DAY1, 13), "0")
    s.sms_requested("req-c", "c", t(DAY1, 13), SHOP)
    assert [r.invalid_attempts for r in record_of(s, "c").path] == [3]


def test_a_timeout_fallback_is_counted_once_from_either_signal() -> None:
    s = Recorder(TENANT)
    s.started("c", DAY1, SHOP)
    s.prompt("c", 1, t(DAY1, 1), "main")
    s.timed_out("c", 1, t(DAY1, 6))
    s.prompt("c", 2, t(DAY1, 6), "main", reason=3, to=1)
    s.timed_out("c", 2, t(DAY1, 11))
    s.prompt("c", 3, t(DAY1, 11), "main", reason=3, to=2)
    # The third InputTimedOut is not in yet; routing's fallback action says the limit was reached.
    s.hangup("c", 4, t(DAY1, 16), "fallback")
    mark_fallback(s, TIMEOUT)
    assert [(r.invalid_attempts, r.timeout_attempts) for r in record_of(s, "c").path] == [(0, 3)]
    s.timed_out("c", 3, t(DAY1, 16))
    assert [(r.invalid_attempts, r.timeout_attempts) for r in record_of(s, "c").path] == [(0, 3)]


def test_a_hang_up_recorded_before_the_fallback_mark_existed_still_counts_its_last_key() -> None:
    s = Recorder(TENANT)
    step = three_wrong_keys(s, "old")
    s.hangup("old", step, t(DAY1, 13), "fallback")  # no CallAction.fallback: an older routing
    assert [r.invalid_attempts for r in record_of(s, "old").path] == [3]


# --- 9. abandoned during number capture ---------------------------------------------------------------------


def capture_prompt(s: Recorder, call: str, step: int, seconds: int, kind: int, reason: int = 1) -> None:
    body = actions.PlayAndCollect(route_id="sms", route_name="SMS送信", reason=reason, input_kind=kind)
    s.action(call, step, t(DAY1, seconds), "play_and_collect", body)


def chose_sms_then_hung_up(call: str, kind: int = actions.INPUT_KIND_MOBILE_NUMBER) -> CallRecord:
    """A landline caller chooses SMS (1), is asked for a mobile number, and hangs up."""
    s = Recorder(TENANT)
    s.started(call, DAY1, SHOP, caller="+81612345678")
    s.prompt(call, 1, t(DAY1, 1), "main")
    s.digits(call, 1, t(DAY1, 5), "1")
    capture_prompt(s, call, 2, 5, actions.INPUT_KIND_MOBILE_NUMBER)
    if kind == actions.INPUT_KIND_MOBILE_NUMBER_CONFIRMATION:
        s.digits(call, 2, t(DAY1, 15), "09012345678#")
        capture_prompt(s, call, 3, 15, kind)
    during = 2 if kind == actions.INPUT_KIND_MOBILE_NUMBER else 3
    s.ended(call, t(DAY1, 30), events.END_REASON_CALLER_HANGUP, during)
    return record_of(s, call)


def test_hanging_up_at_the_mobile_number_prompt_is_abandoned_during_number_capture() -> None:
    for kind in (actions.INPUT_KIND_MOBILE_NUMBER, actions.INPUT_KIND_MOBILE_NUMBER_CONFIRMATION):
        record = chose_sms_then_hung_up("cap", kind)
        assert record.outcome is CallOutcome.ABANDONED_IN_NUMBER_CAPTURE
        assert record.abandonment is not None
        assert (record.abandonment.route_id, record.abandonment.stage) == (
            "sms",
            AbandonedStage.NUMBER_CAPTURE,
        )
        assert [entry.abandoned_here for entry in record.funnel_entries()] == [False, True]
        message = call_message(record)
        assert (message.outcome, message.abandoned_stage) == (
            pb.CALL_OUTCOME_ABANDONED_IN_NUMBER_CAPTURE,
            "number_capture",
        )
    assert outcome_of(pb.CALL_OUTCOME_ABANDONED_IN_NUMBER_CAPTURE) is CallOutcome.ABANDONED_IN_NUMBER_CAPTURE


def test_a_menu_abandonment_stays_abandoned() -> None:
    s = Recorder(TENANT)
    s.started("menu", DAY1, SHOP)
    s.prompt("menu", 1, t(DAY1, 1), "main")
    s.ended("menu", t(DAY1, 3), events.END_REASON_CALLER_HANGUP, 1)
    assert record_of(s, "menu").outcome is CallOutcome.ABANDONED


def test_the_daily_figures_csv_and_report_row_count_capture_abandonments_as_part_of_abandoned() -> None:
    records = [chose_sms_then_hung_up("cap"), chose_sms_then_hung_up("cap-2")]
    s = Recorder(TENANT)
    s.started("menu", t(DAY1, 100), SHOP)
    s.prompt("menu", 1, t(DAY1, 101), "main")
    s.ended("menu", t(DAY1, 103), events.END_REASON_CALLER_HANGUP, 1)
    records.append(record_of(s, "menu"))
    (row,) = daily_figures([CallTally.of(r) for r in records], [], lambda _: False)
    assert (row.calls, row.abandoned_calls, row.abandoned_in_number_capture) == (3, 3, 2)
    assert row.abandonment_rate == 1.0
    assert daily_row(row).abandoned_in_number_capture == 2
    assert HEADERS[-2] == NUMBER_CAPTURE_ABANDONED_HEADER == "途中放棄数(携帯番号入力中)"
    NUMBER_CAPTURE_ABANDONED_HEADER.encode("cp932")
    cells = dict(zip(HEADERS, row_cells(row), strict=True))
    assert (cells["途中放棄数"], cells[NUMBER_CAPTURE_ABANDONED_HEADER]) == (3, 2)


def test_the_trace_says_the_caller_chose_sms_but_hung_up_while_keying_the_number() -> None:
    answer = answer_trace([chose_sms_then_hung_up("cap")], [])
    assert answer.verdict is TraceVerdict.NO_SMS_REQUESTED
    assert "選ばれていない" not in answer.summary
    assert "SMS送信を選ばれましたが、携帯電話番号の入力中に通話が終了" in answer.summary

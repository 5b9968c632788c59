import random
from datetime import date

import pytest
from hibiki_reporting.domain.calls import (
    AbandonedStage,
    Abandonment,
    CallOutcome,
    RouteFunnelEntry,
    RouteStep,
    materialize_call,
)
from hibiki_reporting.domain.facts import (
    CallEnded,
    CallStarted,
    CallTransferred,
    DigitsCollected,
    PromptIssued,
    PromptReason,
    SmsStatus,
    TargetIssued,
    TargetKind,
)
from hibiki_reporting.domain.figures import CallTally, DailyFigures, SmsTally, daily_figures
from hibiki_reporting.domain.sms import StatusChange, materialize_sms

from services.reporting.tests.reporting_recorded import (
    CALLS,
    DAY1,
    SHOP,
    SMS,
    SNAPSHOT,
    SUPPORT,
    at,
    prompt,
    sms_call,
)


def shuffled_with_duplicates(facts: list, seed: int) -> list:
    rng = random.Random(seed)
    replayed = facts + rng.sample(facts, k=max(1, len(facts) // 2))
    rng.shuffle(replayed)
    return replayed


@pytest.mark.parametrize("seed", range(20))
def test_records_do_not_depend_on_arrival_order_or_duplicates(seed: int) -> None:
    for call_id, facts in CALLS.items():
        assert materialize_call(call_id, shuffled_with_duplicates(facts, seed)) == materialize_call(
            call_id, facts
        )
    for request_id, facts in SMS.items():
        assert materialize_sms(request_id, shuffled_with_duplicates(facts, seed)) == materialize_sms(
            request_id, facts
        )


def test_path_counts_invalid_and_timeout_attempts_per_route_visit() -> None:
    record = materialize_call("call-a", CALLS["call-a"])

    assert record.path == (RouteStep("main", "メインメニュー", "1", 1, 1),)
    assert record.outcome is CallOutcome.SMS_SENT
    assert record.abandonment is None
    assert (record.start_time, record.end_time) == (DAY1, at(DAY1, 35))
    assert record.report_date == date(2026, 11, 9)


def test_hang_up_during_invalid_input_guidance_is_abandonment_with_route_stage_and_attempts() -> None:
    record = materialize_call("call-b", CALLS["call-b"])

    assert record.outcome is CallOutcome.ABANDONED
    assert record.abandonment == Abandonment("main", "メインメニュー", AbandonedStage.INVALID_INPUT, 1, 0)
    assert record.funnel_entries() == [RouteFunnelEntry("main", "メインメニュー", 1, 0, True)]


def test_hang_up_before_the_last_action_arrives_is_abandoned_until_the_action_arrives() -> None:
    facts = CALLS["call-c"]
    without_transfer = [f for f in facts if not isinstance(f, TargetIssued | CallTransferred)]

    early = materialize_call("call-c", without_transfer)
    late = materialize_call("call-c", facts)

    assert early.outcome is CallOutcome.ABANDONED
    assert early.abandonment is not None and early.abandonment.route_id == "sub"
    assert late.outcome is CallOutcome.TRANSFERRED
    assert late.abandonment is None
    assert [step.route_id for step in late.path] == ["main", "sub"]
    assert [step.digits for step in late.path] == ["2", "1"]


def test_unknown_number_and_hang_up_during_first_prompt() -> None:
    assert materialize_call("call-d", CALLS["call-d"]).outcome is CallOutcome.NOT_IN_SERVICE
    record = materialize_call("call-e", CALLS["call-e"])
    assert record.abandonment == Abandonment("main", "メインメニュー", AbandonedStage.PROMPT, 0, 0)


def test_receipt_before_acceptance_keeps_the_receipt_as_final_status() -> None:
    accepted, delivered = SMS["req-a"][1], SMS["req-a"][2]
    record = materialize_sms("req-a", [delivered, SMS["req-a"][0], accepted])

    assert record.status is SmsStatus.DELIVERED
    assert record.reason == "DELIVRD"
    assert record.carrier == "docomo"
    assert record.snapshot == SNAPSHOT
    assert [change.status for change in record.timeline] == [
        SmsStatus.REQUESTED,
        SmsStatus.ACCEPTED,
        SmsStatus.DELIVERED,
    ]
    assert record.timeline[-1] == StatusChange(at(DAY1, 40), SmsStatus.DELIVERED, "DELIVRD")


def test_result_before_its_request_fills_in_when_the_request_arrives() -> None:
    early = materialize_sms("req-h", SMS["req-h"][1:])
    assert (early.status, early.call_id, early.box_number) == (SmsStatus.UNDELIVERED, "", "001")
    complete = materialize_sms("req-h", SMS["req-h"])
    assert (complete.call_id, complete.recipient, complete.dialed_number) == ("call-h", "+819012345678", SHOP)


@pytest.mark.parametrize("seed", range(5))
def test_daily_figures_of_the_recorded_sequence(seed: int) -> None:
    calls = [materialize_call(c, shuffled_with_duplicates(f, seed)) for c, f in CALLS.items()]
    sms = [materialize_sms(r, shuffled_with_duplicates(f, seed)) for r, f in SMS.items()]

    rows = daily_figures(
        [CallTally.of(c) for c in calls], [SmsTally.of(s) for s in sms], lambda day: day < date(2026, 11, 10)
    )

    assert rows == [
        DailyFigures(
            date(2026, 11, 9), SHOP, calls=6, abandoned_calls=1, sms_requested=4, sms_accepted=2,
            sms_delivered=1, sms_undelivered=1, sms_rejected={}, sms_failed=1, final=True,
        ),
        DailyFigures(
            date(2026, 11, 9), SUPPORT, calls=2, abandoned_calls=1, final=True,
        ),
        DailyFigures(
            date(2026, 11, 10), SHOP, calls=1, sms_requested=1,
            sms_rejected={"unsupported_carrier": 1}, final=False,
        ),
    ]  # fmt: skip
    assert rows[0].abandonment_rate == pytest.approx(1 / 6)
    assert rows[1].abandonment_rate == 0.5


def test_tallies_with_counts_add_up_like_single_records() -> None:
    day = date(2026, 11, 9)
    rows = daily_figures(
        [CallTally(day, SHOP, CallOutcome.ABANDONED, 3), CallTally(day, SHOP, CallOutcome.SMS_SENT, 5)],
        [
            SmsTally(day, SHOP, SmsStatus.REJECTED, "opted_out", 2),
            SmsTally(day, SHOP, SmsStatus.ACCEPTED, count=3),
        ],
        lambda _day: False,
    )
    assert rows == [
        DailyFigures(day, SHOP, calls=8, abandoned_calls=3, sms_requested=5, sms_accepted=3,
                     sms_rejected={"opted_out": 2})
    ]  # fmt: skip


def test_mistakes_are_counted_per_visit_and_the_one_that_triggers_the_fallback_too() -> None:
    call = "call-x"
    facts = [
        CallStarted(DAY1, SHOP, "+819012345678"),
        prompt(call, 1, at(DAY1, 1), "main", PromptReason.INITIAL),
        DigitsCollected(at(DAY1, 2), f"{call}:1", "1"),
        prompt(call, 2, at(DAY1, 3), "sub", PromptReason.INITIAL),
        DigitsCollected(at(DAY1, 4), f"{call}:2", "0"),  # back to the main menu
        prompt(call, 3, at(DAY1, 5), "main", PromptReason.INITIAL),
        DigitsCollected(at(DAY1, 6), f"{call}:3", "8"),
        prompt(call, 4, at(DAY1, 7), "main", PromptReason.INVALID_INPUT, inv=1),
        DigitsCollected(at(DAY1, 8), f"{call}:4", "8"),
        prompt(call, 5, at(DAY1, 9), "main", PromptReason.INVALID_INPUT, inv=2),
        DigitsCollected(at(DAY1, 10), f"{call}:5", "8"),
        TargetIssued(at(DAY1, 11), 6, f"{call}:6", TargetKind.HANGUP, "main", "fallback"),
        CallEnded(at(DAY1, 12), "system_hangup", f"{call}:6"),
    ]

    record = materialize_call(call, facts)

    assert [(s.route_id, s.digits, s.invalid_attempts) for s in record.path] == [
        ("main", "1", 0),
        ("sub", "0", 0),
        ("main", "8", 3),
    ]
    assert record.outcome is CallOutcome.COMPLETED
    assert sorted(record.funnel_entries(), key=lambda e: e.route_id) == [
        RouteFunnelEntry("main", "メインメニュー", 3, 0, False),
        RouteFunnelEntry("sub", "予約メニュー", 0, 0, False),
    ]


def test_hanging_up_on_a_menu_after_an_sms_is_abandonment_and_the_sms_still_counts() -> None:
    call = "call-y"
    facts = [
        *sms_call(call, DAY1, SHOP, "req-y")[:4],  # started, main prompt, "1", SMS requested
        TargetIssued(at(DAY1, 12), 3, f"{call}:3", TargetKind.ANNOUNCEMENT, "main"),
        prompt(call, 4, at(DAY1, 20), "sub", PromptReason.INITIAL),
        CallEnded(at(DAY1, 25), "caller_hangup", f"{call}:4"),
    ]

    record = materialize_call(call, facts)

    assert record.outcome is CallOutcome.ABANDONED
    assert record.abandonment == Abandonment("sub", "予約メニュー", AbandonedStage.PROMPT, 0, 0)
    without_menu = materialize_call(call, [f for f in facts if not isinstance(f, PromptIssued)])
    assert without_menu.outcome is CallOutcome.SMS_SENT

"""Rejected calls (withheld or blocklisted callers) are counted on their own, never as abandoned."""

from __future__ import annotations

from datetime import date

import pytest
from hibiki_reporting.domain.calls import CallOutcome, materialize_call
from hibiki_reporting.domain.csv_export import HEADERS, row_cells
from hibiki_reporting.domain.facts import CallEnded, CallStarted, TargetIssued, TargetKind
from hibiki_reporting.domain.figures import CallTally, daily_figures
from hibiki_reporting.domain.trace import TraceVerdict, answer_trace

from services.reporting.tests.reporting_recorded import CALLS, DAY1, SHOP, at

BLOCKED = "+819099998888"


def rejected_call(call: str, reason: str, caller: str = BLOCKED, hangup_first: bool = True) -> list:
    hangup = TargetIssued(at(DAY1, 1), 1, f"{call}:1", TargetKind.HANGUP, "", reason)
    ended = CallEnded(at(DAY1, 5), "system_hangup", f"{call}:1")
    return [CallStarted(DAY1, SHOP, caller), *((hangup, ended) if hangup_first else (ended, hangup))]


@pytest.mark.parametrize("reason", ["rejected_withheld", "rejected_blocklist"])
@pytest.mark.parametrize("hangup_first", [True, False], ids=["in order", "call end first"])
def test_a_rejected_call_is_rejected_whatever_the_order_of_its_facts(reason: str, hangup_first: bool) -> None:
    record = materialize_call("r1", rejected_call("r1", reason, hangup_first=hangup_first))
    assert record.outcome is CallOutcome.REJECTED
    assert record.abandonment is None and record.path == ()


def test_a_fact_that_arrives_before_the_rejection_shows_the_call_as_abandoned_only_meanwhile() -> None:
    facts = rejected_call("r2", "rejected_withheld", caller="")
    assert materialize_call("r2", [facts[0], facts[2]]).outcome is CallOutcome.ABANDONED
    assert materialize_call("r2", facts).outcome is CallOutcome.REJECTED


def test_daily_figures_count_rejected_calls_apart_from_abandoned_ones() -> None:
    records = [
        materialize_call("r3", rejected_call("r3", "rejected_blocklist")),
        materialize_call("r4", rejected_call("r4", "rejected_withheld", caller="")),
        materialize_call("call-b", CALLS["call-b"]),  # abandoned during the invalid-input guidance
        materialize_call("call-a", CALLS["call-a"]),  # SMS sent
    ]
    (row,) = daily_figures([CallTally.of(r) for r in records], [], lambda day: False)
    assert (row.day, row.calls, row.rejected_calls, row.abandoned_calls) == (date(2026, 11, 9), 4, 2, 1)
    # Rejected callers never heard a guidance that could lose them.
    assert row.abandonment_rate == 0.5
    cells = dict(zip(HEADERS, row_cells(row), strict=True))
    assert (cells["着信数"], cells["着信拒否数"], cells["途中放棄数"], cells["途中放棄率(%)"]) == (
        4,
        2,
        1,
        "50.0",
    )


def test_the_trace_of_a_blocklisted_caller_says_the_calls_were_rejected() -> None:
    calls = [materialize_call("r5", rejected_call("r5", "rejected_blocklist"))]
    answer = answer_trace(calls, [])
    assert answer.verdict is TraceVerdict.CALL_REJECTED
    assert "着信拒否" in answer.summary
    mixed = [*calls, materialize_call("call-b", CALLS["call-b"])]
    assert answer_trace(mixed, []).verdict is TraceVerdict.NO_SMS_REQUESTED

"""Business-hours branch in Asia/Tokyo: windows, Japanese public holidays (jpholiday), tenant closed days."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hibiki_routing.domain.business_hours import is_open, parse_clock
from hibiki_routing.domain.calls import CallState
from hibiki_routing.domain.engine import start_call
from hibiki_routing.domain.flows import BusinessHoursNode

from services.routing.tests.routing_flows import DIALED, WEEKDAYS_9_TO_18, describe, sample_flow

HOURS = BusinessHoursNode(
    "open",
    "closed",
    (WEEKDAYS_9_TO_18,),
    closed_on_public_holidays=True,
    closed_dates=frozenset({"2026-12-29"}),
)

CASES = {
    # 2026-11-24 is a Tuesday; 01:00 UTC is 10:00 in Tokyo.
    "weekday inside the window": (datetime(2026, 11, 24, 1, 0, tzinfo=UTC), True),
    "weekday before opening (08:59 JST)": (datetime(2026, 11, 23, 23, 59, tzinfo=UTC), False),
    "end is exclusive (18:00 JST)": (datetime(2026, 11, 24, 9, 0, tzinfo=UTC), False),
    "UTC Monday evening is Tokyo Tuesday morning": (datetime(2026, 11, 24, 0, 30, tzinfo=UTC), True),
    "Saturday": (datetime(2026, 11, 28, 1, 0, tzinfo=UTC), False),
    # 2026-11-23 (Monday) is 勤労感謝の日.
    "public holiday on a weekday": (datetime(2026, 11, 23, 1, 0, tzinfo=UTC), False),
    "tenant closed day": (datetime(2026, 12, 29, 1, 0, tzinfo=UTC), False),
}


@pytest.mark.parametrize(("at", "expected"), CASES.values(), ids=CASES.keys())
def test_business_hours_case(at: datetime, expected: bool) -> None:
    assert is_open(HOURS, at) is expected


def test_holidays_are_ordinary_days_unless_declared_closed() -> None:
    holiday_open = BusinessHoursNode("open", "closed", (WEEKDAYS_9_TO_18,))
    assert is_open(holiday_open, datetime(2026, 11, 23, 1, 0, tzinfo=UTC))


def test_call_on_a_japanese_holiday_takes_the_closed_branch() -> None:
    state = CallState("call-h", "tenant-a", "flow-1", 1, DIALED, "+819012345678")
    holiday = start_call(state, sample_flow(entry="hours"), datetime(2026, 11, 23, 1, 0, tzinfo=UTC))
    workday = start_call(state, sample_flow(entry="hours"), datetime(2026, 11, 24, 1, 0, tzinfo=UTC))
    assert [describe(o) for o in holiday.outputs] == ["hangup completed [g-closed]"]
    assert [describe(o) for o in workday.outputs] == ["collect menu initial [g-menu] i0 t0"]


@pytest.mark.parametrize(("text", "minutes"), [("00:00", 0), ("09:30", 570), ("24:00", 1440)])
def test_parse_clock(text: str, minutes: int) -> None:
    assert parse_clock(text) == minutes


@pytest.mark.parametrize("text", ["9", "9:5", "24:01", "12:60", "ab:cd", ""])
def test_parse_clock_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_clock(text)

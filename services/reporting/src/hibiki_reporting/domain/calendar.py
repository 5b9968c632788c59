"""Asia/Tokyo report days and business days (weekends, Japanese public holidays, configured closed days)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import jpholiday

TOKYO = ZoneInfo("Asia/Tokyo")


def report_date(at: datetime) -> date:
    """The Asia/Tokyo calendar day of an instant (reports are kept in Japanese days)."""
    return at.astimezone(TOKYO).date()


def days(start: date, end: date) -> Iterable[date]:
    """Every day from start to end, both included."""
    for offset in range((end - start).days + 1):
        yield start + timedelta(days=offset)


class BusinessCalendar:
    """Business days (営業日): weekdays that are neither public holidays nor configured closed days."""

    def __init__(self, closed_days: Iterable[date] = ()) -> None:
        self._closed = frozenset(closed_days)

    def is_business_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self._closed and not jpholiday.is_holiday(day)

    def previous_business_day(self, day: date) -> date:
        day -= timedelta(days=1)
        while not self.is_business_day(day):
            day -= timedelta(days=1)
        return day

    def next_business_day(self, day: date) -> date:
        day += timedelta(days=1)
        while not self.is_business_day(day):
            day += timedelta(days=1)
        return day

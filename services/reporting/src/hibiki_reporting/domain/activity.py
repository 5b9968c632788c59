"""Calls and SMS over time, for the report page's chart: per Asia/Tokyo hour of one day, or per day.

The figures are the daily report's: calls (着信数), SMS requested (SMS送信依頼数), accepted by the
carrier (送信完了, receipts since included) and delivered (到達). A final day (確定) counts each SMS as
it stood when the day became final, exactly like its row of the daily report, so the hours of a day add
up to that row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from .calendar import TOKYO, days
from .facts import SmsStatus
from .figures import DailyFigures
from .sms import CARRIER_ACCEPTED, SmsRecord
from .validation import DayRange

HOURS_PER_DAY = 24
# The figures of a point, in the order the chart draws and describes them.
SERIES = ("calls", "sms_requested", "sms_accepted", "sms_delivered")


class Granularity(StrEnum):
    HOUR = "hour"
    DAY = "day"


def granularity(day_range: DayRange) -> Granularity:
    """Per hour for a one-day range, per day for a longer one."""
    return Granularity.HOUR if day_range.start == day_range.end else Granularity.DAY


@dataclass(frozen=True)
class CallHourTally:
    """How many calls started in one hour (`hour`: an instant of that hour, e.g. its start, any time zone)."""

    hour: datetime
    count: int = 1


@dataclass(frozen=True)
class SmsHourTally:
    """How many SMS requested in one hour (`hour`: an instant of that hour) are in one status."""

    hour: datetime
    status: SmsStatus
    count: int = 1

    @classmethod
    def of(cls, record: SmsRecord, count: int = 1) -> SmsHourTally:
        return cls(record.request_time or record.first_seen, record.status, count)


@dataclass(frozen=True)
class ActivityPoint:
    """The figures of one hour or one day; `start` is its first instant in Asia/Tokyo."""

    start: datetime
    calls: int = 0
    sms_requested: int = 0
    sms_accepted: int = 0
    sms_delivered: int = 0


@dataclass(frozen=True)
class Activity:
    granularity: Granularity
    day_range: DayRange
    points: tuple[ActivityPoint, ...]

    def total(self, series: str) -> int:
        return sum(int(getattr(point, series)) for point in self.points)


def tokyo_hour(at: datetime) -> datetime:
    """The Asia/Tokyo hour an instant falls in, as the hour's first instant."""
    return at.astimezone(TOKYO).replace(minute=0, second=0, microsecond=0)


def _start_of(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), TOKYO)


def hourly_activity(
    day: date,
    calls: Iterable[CallHourTally],
    sms: Iterable[SmsHourTally],
    late: Iterable[tuple[SmsRecord, SmsRecord]] = (),
) -> Activity:
    """The 24 Tokyo hours of `day`. `late` pairs an SMS whose status was decided after its (final) day became
    final with the same SMS as of then (see figures.as_finalized): it counts as it was then.

    A tally of another day is an error: the hours and the day's rows must come from the same records.
    """
    first = _start_of(day)
    hours = [first + timedelta(hours=offset) for offset in range(HOURS_PER_DAY)]
    counts = {hour: dict.fromkeys(SERIES, 0) for hour in hours}

    def bucket(at: datetime) -> dict[str, int]:
        hour = tokyo_hour(at)
        if hour not in counts:
            raise ValueError(f"{at.isoformat()} is not in the Asia/Tokyo day {day.isoformat()}")
        return counts[hour]

    for call in calls:
        bucket(call.hour)["calls"] += call.count
    moved = [(SmsHourTally.of(now, -1), SmsHourTally.of(then)) for now, then in late]
    for message in [*sms, *(tally for pair in moved for tally in pair)]:
        figures = bucket(message.hour)
        figures["sms_requested"] += message.count
        if message.status in CARRIER_ACCEPTED:
            figures["sms_accepted"] += message.count
        if message.status is SmsStatus.DELIVERED:
            figures["sms_delivered"] += message.count
    points = tuple(ActivityPoint(hour, **counts[hour]) for hour in hours)
    return Activity(Granularity.HOUR, DayRange(day, day), points)


def daily_activity(day_range: DayRange, rows: Iterable[DailyFigures]) -> Activity:
    """Every day of the range (days without calls or SMS too), all dialed numbers of the rows added up: the
    figures the daily report shows for them."""
    totals = {day: dict.fromkeys(SERIES, 0) for day in days(day_range.start, day_range.end)}
    for row in rows:
        if row.day not in totals:
            raise ValueError(f"a row of {row.day.isoformat()} is outside the range")
        for series in SERIES:
            totals[row.day][series] += int(getattr(row, series))
    points = tuple(ActivityPoint(_start_of(day), **figures) for day, figures in totals.items())
    return Activity(Granularity.DAY, day_range, points)

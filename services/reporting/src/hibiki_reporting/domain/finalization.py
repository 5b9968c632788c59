"""When a report day becomes final: the seed's publication rule (着信・SMS送信レポートの更新頻度).

The old product published the report at 13:00 JST on business days, two days behind, and one business
day later after three or more consecutive days off ("7/22–7/25 off → 7/27 13:00 shows through 7/24").
Hibiki shows figures in near real time, and uses the same rule to mark a day *final*, so that late
delivery receipts are accounted for before a day is called final:

1. At 13:00 JST on each business day B, every day up to B − 2 (calendar days) becomes final.
   A normal week: Wednesday 13:00 → through Monday; Monday 13:00 → through Saturday;
   Tuesday 13:00 → through Sunday.
2. If B is the first business day after a run of 3 or more consecutive non-business days, B's
   publication moves one business day later: B makes nothing new final, and the next business day
   publishes B's cut-off (B − 2) in place of its own. The day after that is normal again.
   Example: 2021-07-22..25 closed → 07-26 13:00 adds nothing (final through 07-19, published 07-21),
   07-27 13:00 → through 07-24, 07-28 13:00 → through 07-26.
3. When that next business day is itself the first after another long break, it publishes the moved
   cut-off and its own moves on in turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from .calendar import TOKYO, BusinessCalendar

PUBLICATION_TIME = time(13, 0)
DAYS_BEHIND = 2
LONG_BREAK_DAYS = 3
# A publication always exists within this many days of any instant unless almost every day is closed.
_SEARCH_LIMIT_DAYS = 400


@dataclass(frozen=True)
class Finalization:
    final_through: date
    next_time: datetime
    next_final_through: date


class FinalizationSchedule:
    """Applies the rule above to a business calendar."""

    def __init__(self, calendar: BusinessCalendar) -> None:
        self._calendar = calendar

    def final_through(self, at: datetime) -> date:
        """The last final day at instant `at`."""
        local = at.astimezone(TOKYO)
        day = local.date() if local.time() >= PUBLICATION_TIME else local.date() - timedelta(days=1)
        for _ in range(_SEARCH_LIMIT_DAYS):
            if self._calendar.is_business_day(day):
                published = self._published_on(day)
                if published is not None:
                    return published
            day -= timedelta(days=1)
        raise ValueError("no business day within the search window; check the closed days")

    def status(self, at: datetime) -> Finalization:
        """The final-through day at `at`, and the next publication that moves it forward."""
        current = self.final_through(at)
        local = at.astimezone(TOKYO)
        day = local.date() if local.time() < PUBLICATION_TIME else local.date() + timedelta(days=1)
        for _ in range(_SEARCH_LIMIT_DAYS):
            if self._calendar.is_business_day(day):
                published = self._published_on(day)
                if published is not None and published > current:
                    return Finalization(current, datetime.combine(day, PUBLICATION_TIME, TOKYO), published)
            day += timedelta(days=1)
        raise ValueError("no business day within the search window; check the closed days")

    def finalized_at(self, day: date) -> datetime:
        """The publication (13:00 JST of a business day) that made `day` final."""
        business_day = day + timedelta(days=1)
        for _ in range(_SEARCH_LIMIT_DAYS):
            if self._calendar.is_business_day(business_day):
                published = self._published_on(business_day)
                if published is not None and published >= day:
                    return datetime.combine(business_day, PUBLICATION_TIME, TOKYO)
            business_day += timedelta(days=1)
        raise ValueError("no business day within the search window; check the closed days")

    def is_final(self, day: date, at: datetime) -> bool:
        return day <= self.final_through(at)

    def _published_on(self, business_day: date) -> date | None:
        """The cut-off published at 13:00 on `business_day`, or None when its publication moved on."""
        previous = self._calendar.previous_business_day(business_day)
        if self._follows_long_break(previous):
            return previous - timedelta(days=DAYS_BEHIND)
        if self._follows_long_break(business_day):
            return None
        return business_day - timedelta(days=DAYS_BEHIND)

    def _follows_long_break(self, business_day: date) -> bool:
        previous = self._calendar.previous_business_day(business_day)
        return (business_day - previous).days - 1 >= LONG_BREAK_DAYS

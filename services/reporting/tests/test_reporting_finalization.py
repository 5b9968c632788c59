from datetime import date, datetime

import pytest
from hibiki_reporting.domain.calendar import TOKYO, BusinessCalendar, report_date
from hibiki_reporting.domain.finalization import FinalizationSchedule

SEED_CLOSED = [date(2021, 7, d) for d in (22, 23, 24, 25)]


def jst(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=TOKYO)


def test_seed_example_long_break_moves_the_publication_one_business_day() -> None:
    schedule = FinalizationSchedule(BusinessCalendar(SEED_CLOSED))

    assert schedule.final_through(jst(2021, 7, 26, 13)) == date(2021, 7, 19)
    assert not schedule.is_final(date(2021, 7, 24), jst(2021, 7, 26, 13))
    assert schedule.final_through(jst(2021, 7, 27, 12, 59)) == date(2021, 7, 19)
    assert schedule.final_through(jst(2021, 7, 27, 13)) == date(2021, 7, 24)
    assert schedule.is_final(date(2021, 7, 24), jst(2021, 7, 27, 13))
    assert not schedule.is_final(date(2021, 7, 25), jst(2021, 7, 27, 13))
    assert schedule.final_through(jst(2021, 7, 28, 13)) == date(2021, 7, 26)


@pytest.mark.parametrize(
    ("at", "final_through"),
    [
        (jst(2026, 11, 9, 12, 59), date(2026, 11, 4)),  # Monday morning: Friday's publication
        (jst(2026, 11, 9, 13), date(2026, 11, 7)),  # Monday 13:00: through Saturday
        (jst(2026, 11, 10, 13), date(2026, 11, 8)),
        (jst(2026, 11, 11, 13), date(2026, 11, 9)),
        (jst(2026, 11, 12, 13), date(2026, 11, 10)),
        (jst(2026, 11, 13, 13), date(2026, 11, 11)),
        (jst(2026, 11, 14, 18), date(2026, 11, 11)),  # nothing is published on a Saturday
        (jst(2026, 11, 15, 18), date(2026, 11, 11)),
    ],
)
def test_normal_week_publishes_two_days_behind_on_business_days(at: datetime, final_through: date) -> None:
    assert FinalizationSchedule(BusinessCalendar()).final_through(at) == final_through


def test_public_holidays_count_as_non_business_days_without_configuration() -> None:
    # 2021-07-22/23 were public holidays (Olympics), so the seed's break is found by jpholiday alone.
    schedule = FinalizationSchedule(BusinessCalendar())
    assert schedule.final_through(jst(2021, 7, 26, 13)) == date(2021, 7, 19)
    assert schedule.final_through(jst(2021, 7, 27, 13)) == date(2021, 7, 24)


def test_status_names_the_next_publication_that_moves_the_cutoff() -> None:
    schedule = FinalizationSchedule(BusinessCalendar(SEED_CLOSED))

    status = schedule.status(jst(2021, 7, 21, 14))

    assert status.final_through == date(2021, 7, 19)
    assert status.next_time == jst(2021, 7, 27, 13)
    assert status.next_final_through == date(2021, 7, 24)


def test_configured_closed_weekday_behaves_like_a_holiday() -> None:
    # Friday 2026-11-13 closed: Fri+Sat+Sun is a 3-day break, so Monday's publication moves to Tuesday.
    schedule = FinalizationSchedule(BusinessCalendar([date(2026, 11, 13)]))
    assert schedule.final_through(jst(2026, 11, 16, 13)) == date(2026, 11, 10)
    assert schedule.final_through(jst(2026, 11, 17, 13)) == date(2026, 11, 14)


def test_report_days_are_tokyo_days() -> None:
    assert report_date(datetime.fromisoformat("2026-11-09T14:59:59+00:00")) == date(2026, 11, 9)
    assert report_date(datetime.fromisoformat("2026-11-09T15:00:00+00:00")) == date(2026, 11, 10)

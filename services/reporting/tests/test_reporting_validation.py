from datetime import date

import pytest
from hibiki_reporting.domain.validation import DayRange, parse_range
from hibiki_runtime.errors import InvalidArgument
from hibiki_runtime.phone import require_phone


def test_a_range_of_days_includes_both_ends() -> None:
    assert parse_range("2026-11-01", "2026-11-30") == DayRange(date(2026, 11, 1), date(2026, 11, 30))


@pytest.mark.parametrize(
    ("start", "end", "fields"),
    [
        ("2026-13-01", "2026-11-30", ["range.start_date"]),
        ("", "", ["range.start_date", "range.end_date"]),
        ("2026-11-30", "2026-11-01", ["range.end_date"]),
        ("2020-01-01", "2026-11-01", ["range.end_date"]),
    ],
)
def test_bad_ranges_name_the_field(start: str, end: str, fields: list[str]) -> None:
    with pytest.raises(InvalidArgument) as raised:
        parse_range(start, end)
    assert [v.field for v in raised.value.violations] == fields


@pytest.mark.parametrize(
    ("typed", "e164"),
    [
        ("090-1234-5678", "+819012345678"),
        ("+81 90 1234 5678", "+819012345678"),
        ("03(1234)5678", "+81312345678"),
        ("０９０－１２３４－５６７８", "+819012345678"),
        ("＋８１９０１２３４５６７８", "+819012345678"),
        ("03-1234-5678", "+81312345678"),
    ],
)
def test_phone_numbers_typed_by_support_staff_become_e164(typed: str, e164: str) -> None:
    assert require_phone("caller_number", typed) == e164


@pytest.mark.parametrize("typed", ["", "abc", "12", "+0123456789", "٠٩٠١٢٣٤٥٦٧٨", "+81901234567890123"])
def test_what_is_not_a_phone_number_is_refused(typed: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        require_phone("caller_number", typed)
    assert raised.value.violations[0].field == "caller_number"

"""Checks on what callers ask for: date ranges, with field-level errors (numbers: hibiki_runtime.phone)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from hibiki_runtime.errors import FieldViolation, InvalidArgument

MAX_RANGE_DAYS = 400


@dataclass(frozen=True)
class DayRange:
    start: date
    end: date


def parse_range(
    start: str, end: str, fields: tuple[str, str] = ("range.start_date", "range.end_date")
) -> DayRange:
    """A range of Asia/Tokyo days written YYYY-MM-DD, both ends included; `fields` name them in errors."""
    violations = []
    days: list[date] = []
    for field, text in zip(fields, (start, end), strict=True):
        try:
            days.append(date.fromisoformat(text))
        except ValueError:
            violations.append(FieldViolation(field, f"expected a date YYYY-MM-DD, got {text!r}"))
    if violations:
        raise InvalidArgument(*violations)
    first, last = days
    if first > last:
        raise InvalidArgument.field(fields[1], f"must not be before {fields[0]}")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise InvalidArgument.field(fields[1], f"a range covers at most {MAX_RANGE_DAYS} days")
    return DayRange(first, last)

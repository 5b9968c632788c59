"""Checks on what callers ask for: date ranges and phone numbers, with field-level errors."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from hibiki_runtime.errors import FieldViolation, InvalidArgument

MAX_RANGE_DAYS = 400
_SEPARATORS = re.compile(r"[\s\-()（）－ー]")
_E164 = re.compile(r"\+[1-9]\d{7,14}")


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


def normalize_phone(text: str, field: str) -> str:
    """E.164 form of a number typed as "+81 90-1234-5678" or domestically as "090-1234-5678"."""
    compact = _SEPARATORS.sub("", text)
    if compact.startswith("0") and not compact.startswith("00"):
        compact = "+81" + compact[1:]
    if not _E164.fullmatch(compact):
        raise InvalidArgument.field(field, "expected a phone number such as +819012345678 or 090-1234-5678")
    return compact

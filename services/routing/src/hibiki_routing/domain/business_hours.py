"""Business hours in Asia/Tokyo with Japanese public holidays (jpholiday) and tenant-defined closed days."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import jpholiday

from .flows import BusinessHoursNode

TOKYO = ZoneInfo("Asia/Tokyo")


def is_open(node: BusinessHoursNode, at: datetime) -> bool:
    """Whether the windows of `node` are open at the (timezone-aware) instant `at`, in Tokyo time."""
    local = at.astimezone(TOKYO)
    day = local.date()
    if day.isoformat() in node.closed_dates:
        return False
    if node.closed_on_public_holidays and jpholiday.is_holiday(day):
        return False
    minute = local.hour * 60 + local.minute
    weekday = local.isoweekday()
    return any(
        weekday in window.weekdays and window.start_minute <= minute < window.end_minute
        for window in node.windows
    )


def parse_clock(text: str) -> int:
    """Minutes since midnight of "HH:MM" ("24:00" allowed as an end); ValueError otherwise."""
    hours, sep, minutes = text.partition(":")
    if not (sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise ValueError(f"{text!r} is not HH:MM")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) >= 60 or value > 24 * 60:
        raise ValueError(f"{text!r} is not a time of day")
    return value


def format_clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"

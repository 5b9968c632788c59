"""Daily figures per dialed number, from counts of call outcomes and SMS statuses (tallies)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import date

from .calls import ABANDONED_OUTCOMES, CallOutcome, CallRecord
from .facts import SmsStatus
from .sms import CARRIER_ACCEPTED, SmsRecord


@dataclass(frozen=True)
class CallTally:
    """How many calls of one day and dialed number ended with one outcome."""

    day: date
    dialed_number: str
    outcome: CallOutcome
    count: int = 1

    @classmethod
    def of(cls, record: CallRecord) -> CallTally:
        return cls(record.report_date, record.dialed_number, record.outcome)


@dataclass(frozen=True)
class SmsTally:
    """How many SMS of one day and dialed number are in one status (and reject reason)."""

    day: date
    dialed_number: str
    status: SmsStatus
    reject_reason: str = ""
    count: int = 1
    recipient_captured: bool = False

    @classmethod
    def of(cls, record: SmsRecord) -> SmsTally:
        return cls(
            record.report_date,
            record.dialed_number,
            record.status,
            record.reject_reason,
            recipient_captured=record.recipient_captured,
        )


@dataclass(frozen=True)
class RouteFunnelRow:
    """Calls that reached a route, the mistakes made there, and the callers it lost (途中放棄)."""

    route_id: str
    route_name: str
    reached: int
    invalid_inputs: int
    timeouts: int
    abandoned: int
    # Route ids are unique within a flow only; the flow's dialed number labels it.
    flow_id: str = ""
    dialed_number: str = ""


@dataclass
class DailyFigures:
    day: date
    dialed_number: str
    calls: int = 0
    abandoned_calls: int = 0
    sms_requested: int = 0
    # 送信完了: accepted by the carrier, including those with a delivery receipt since.
    sms_accepted: int = 0
    sms_delivered: int = 0
    sms_undelivered: int = 0
    sms_rejected: dict[str, int] = field(default_factory=dict)
    sms_failed: int = 0
    final: bool = False
    # Part of `calls`; the caller rejection turned them away before any guidance could lose them.
    rejected_calls: int = 0
    # Part of `sms_requested`: sent to a mobile number the caller keyed in.
    sms_requested_to_captured_number: int = 0
    # Part of `calls`; the platform cut them off before a terminal target, so no caller chose to leave.
    platform_failures: int = 0
    # Part of `abandoned_calls`: the caller chose an SMS route and hung up while keying in a mobile number
    # (or confirming it), so no SMS was requested.
    abandoned_in_number_capture: int = 0
    # A final day keeps the figures it had when it became final (確定); what arrived since shows here, as
    # the change of each figure that moved (see `COUNTED`), e.g. {"sms_delivered": 2, "sms_accepted": 0}.
    changes_after_finalization: dict[str, int] = field(default_factory=dict)

    @property
    def abandonment_rate(self) -> float:
        """Abandoned of the calls whose callers could abandon: rejected and lost calls are left out."""
        could_abandon = self.calls - self.rejected_calls - self.platform_failures
        return self.abandoned_calls / could_abandon if could_abandon else 0.0

    @property
    def sms_rejected_total(self) -> int:
        return sum(self.sms_rejected.values())


def daily_figures(
    calls: Iterable[CallTally], sms: Iterable[SmsTally], is_final: Callable[[date], bool]
) -> list[DailyFigures]:
    """Rows ordered by day and dialed number; a day/number appears when it has a call or an SMS."""
    rows: dict[tuple[date, str], DailyFigures] = {}

    def row(day: date, dialed_number: str) -> DailyFigures:
        key = (day, dialed_number)
        if key not in rows:
            rows[key] = DailyFigures(day, dialed_number, final=is_final(day))
        return rows[key]

    for call in calls:
        figures = row(call.day, call.dialed_number)
        figures.calls += call.count
        if call.outcome in ABANDONED_OUTCOMES:
            figures.abandoned_calls += call.count
            if call.outcome is CallOutcome.ABANDONED_IN_NUMBER_CAPTURE:
                figures.abandoned_in_number_capture += call.count
        elif call.outcome is CallOutcome.REJECTED:
            figures.rejected_calls += call.count
        elif call.outcome is CallOutcome.PLATFORM_FAILURE:
            figures.platform_failures += call.count
    for message in sms:
        figures = row(message.day, message.dialed_number)
        figures.sms_requested += message.count
        if message.recipient_captured:
            figures.sms_requested_to_captured_number += message.count
        if message.status in CARRIER_ACCEPTED:
            figures.sms_accepted += message.count
        if message.status is SmsStatus.DELIVERED:
            figures.sms_delivered += message.count
        elif message.status is SmsStatus.UNDELIVERED:
            figures.sms_undelivered += message.count
        elif message.status is SmsStatus.REJECTED:
            reason = message.reject_reason or "unspecified"
            figures.sms_rejected[reason] = figures.sms_rejected.get(reason, 0) + message.count
        elif message.status is SmsStatus.FAILED:
            figures.sms_failed += message.count
    return [rows[key] for key in sorted(rows)]


# The figures of a row that count something, in the order reports show them; `sms_rejected` is the total of
# its reasons.
COUNTED: tuple[str, ...] = (*(f.name for f in fields(DailyFigures) if f.type == "int"), "sms_rejected")


def counts(figures: DailyFigures) -> dict[str, int]:
    """Every figure of `COUNTED` by name."""
    return {
        name: figures.sms_rejected_total if name == "sms_rejected" else int(getattr(figures, name))
        for name in COUNTED
    }


def as_finalized(
    calls: Iterable[CallTally], sms: Iterable[SmsTally], late: Iterable[tuple[SmsRecord, SmsRecord]]
) -> list[DailyFigures]:
    """The rows as they stood when their days became final: the current tallies with each SMS whose status
    was decided after its day's finalization counted as it was then. `late` pairs such a record now with
    the same record as of its day's finalization (sms.as_of). Calls end within their day, long before it
    becomes final, so they count as they are."""
    moved = [(SmsTally.of(now), SmsTally.of(then)) for now, then in late]
    adjusted = [*sms, *(replace(now, count=-now.count) for now, _ in moved), *(then for _, then in moved)]
    rows = daily_figures(calls, adjusted, lambda _day: True)
    for row in rows:
        row.sms_rejected = {reason: count for reason, count in row.sms_rejected.items() if count}
    return rows


def with_finalization(
    live: Iterable[DailyFigures], frozen: Iterable[DailyFigures], frozen_through: date | None
) -> list[DailyFigures]:
    """The rows a report shows: days up to `frozen_through` (the last final day) as they stood when they
    became final (`frozen`, see as_finalized), each with what changed since; later days as they are now."""
    now = {(row.day, row.dialed_number): row for row in live}
    kept = {(row.day, row.dialed_number): row for row in frozen}
    rows = []
    for key in sorted(now.keys() | kept.keys()):
        day, dialed = key
        if frozen_through is None or day > frozen_through:
            if key in now:
                rows.append(now[key])
            continue
        before = kept.get(key) or DailyFigures(day, dialed)
        after = counts(now.get(key) or DailyFigures(day, dialed))
        moved = {name: after[name] - was for name, was in counts(before).items() if after[name] != was}
        rows.append(replace(before, final=True, changes_after_finalization=moved))
    return rows

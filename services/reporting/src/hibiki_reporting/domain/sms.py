"""SMS records folded from the request and the gateway's results, in whatever order they arrive."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime

from .calendar import report_date
from .facts import (
    LinkClicked,
    MessageSnapshot,
    SmsFact,
    SmsRequested,
    SmsResultReported,
    SmsStatus,
)

# A receipt outranks the acceptance it confirms, whichever arrives first; both outrank the request.
_RANK = {
    SmsStatus.REQUESTED: 0,
    SmsStatus.ACCEPTED: 1,
    SmsStatus.REJECTED: 2,
    SmsStatus.FAILED: 2,
    SmsStatus.DELIVERED: 3,
    SmsStatus.UNDELIVERED: 3,
}
# Between two receipts at the same instant (e.g. segments of one message), non-delivery wins.
_TIE_BREAK = {SmsStatus.UNDELIVERED: 1}
CARRIER_ACCEPTED = frozenset({SmsStatus.ACCEPTED, SmsStatus.DELIVERED, SmsStatus.UNDELIVERED})


@dataclass(frozen=True)
class StatusChange:
    at: datetime
    status: SmsStatus
    reason: str


@dataclass(frozen=True)
class SmsRecord:
    request_id: str
    call_id: str
    dialed_number: str
    recipient: str
    box_number: str
    route_id: str
    request_time: datetime | None
    first_seen: datetime
    status: SmsStatus
    reason: str
    status_time: datetime
    carrier: str
    snapshot: MessageSnapshot | None
    timeline: tuple[StatusChange, ...]
    # Opens of the short link by the recipient, and the first of them.
    clicks: int = 0
    first_click_time: datetime | None = None
    recipient_captured: bool = False

    @property
    def report_date(self) -> date:
        """The Asia/Tokyo day of the request (the earliest result until the request arrives)."""
        return report_date(self.request_time or self.first_seen)

    @property
    def reject_reason(self) -> str:
        return self.reason if self.status is SmsStatus.REJECTED else ""


def _decisive(changes: Iterable[StatusChange], default: StatusChange) -> StatusChange:
    """The change that decides the status: the highest rank, then the latest (see _RANK, _TIE_BREAK)."""
    return max(
        changes,
        key=lambda change: (_RANK[change.status], change.at, _TIE_BREAK.get(change.status, 0)),
        default=default,
    )


def as_of(record: SmsRecord, at: datetime) -> SmsRecord:
    """The record as it stood at `at`: only the status changes that had happened by then count."""
    requested = StatusChange(record.request_time or record.first_seen, SmsStatus.REQUESTED, "")
    decided = _decisive((change for change in record.timeline if change.at <= at), requested)
    return replace(record, status=decided.status, reason=decided.reason, status_time=decided.at)


def materialize_sms(request_id: str, facts: Iterable[SmsFact]) -> SmsRecord:
    """The SMS record the facts seen so far describe."""
    ordered = sorted(set(facts), key=lambda fact: (fact.at, repr(fact)))  # a replay adds nothing
    request = next((f for f in ordered if isinstance(f, SmsRequested)), None)
    results = [f for f in ordered if isinstance(f, SmsResultReported)]
    timeline = tuple([StatusChange(request.at, SmsStatus.REQUESTED, "")] if request else []) + tuple(
        StatusChange(r.at, r.status, r.reason) for r in results
    )
    clicks = {f.click_number: f.at for f in ordered if isinstance(f, LinkClicked)}
    # Only a click so far (its acceptance is still on the way): requested, as far as we know.
    final = _decisive(timeline, StatusChange(ordered[0].at, SmsStatus.REQUESTED, ""))
    return SmsRecord(
        request_id=request_id,
        call_id=request.call_id if request else "",
        dialed_number=request.dialed_number if request else "",
        recipient=request.recipient if request else "",
        box_number=request.box_number if request else _box_of(results),
        route_id=request.route_id if request else "",
        request_time=request.at if request else None,
        first_seen=ordered[0].at,
        status=final.status,
        reason=final.reason,
        status_time=final.at,
        carrier=next((r.carrier for r in reversed(results) if r.carrier), ""),
        snapshot=next((r.snapshot for r in reversed(results) if r.snapshot is not None), None),
        timeline=timeline,
        clicks=len(clicks),
        first_click_time=min(clicks.values(), default=None),
        recipient_captured=request.recipient_captured if request else False,
    )


def _box_of(results: list[SmsResultReported]) -> str:
    return next((r.snapshot.box_number for r in results if r.snapshot is not None), "")

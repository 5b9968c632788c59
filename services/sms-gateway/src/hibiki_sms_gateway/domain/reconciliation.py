"""Receipts whose part was never stored: matched to the message they report on by recipient and time.

After a crash between a submit_sm and the commit of its submit_sm_resp, the SMSC has the message (and
will send its receipt) but the gateway never learned the carrier message id. Such a receipt is matched to
the uncertain message for the same handset submitted around the same time: the per-recipient cooldown
(a minute at least between two SMS to one number) makes that match unique. A receipt that could belong to
two messages is left alone (the message stays uncertain) rather than guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from hibiki_sms_gateway.domain.receipts import Receipt

# How far the SMSC's "submit date" may be from when the gateway marked the message submitting: clocks
# differ, and receipts carry minutes only.
SUBMIT_DATE_TOLERANCE = timedelta(minutes=3)
# SMSCs write submit dates on their own clock: UTC, or Japan time.
_SMSC_CLOCKS = (UTC, timezone(timedelta(hours=9)))


@dataclass(frozen=True)
class Uncertain:
    """A message whose fate is unknown: sent to `recipient`, marked submitting at `submitting_since`."""

    request_id: str
    recipient: str  # E.164
    submitting_since: datetime
    segments: int
    known_parts: int


def handset_e164(number: str) -> str:
    """The E.164 form of a number as an SMSC writes it ("8190…", "+8190…", "090…"); "" when unreadable."""
    digits = "".join(ch for ch in number if ch.isascii() and ch.isdigit())
    if not digits:
        return ""
    if number.startswith("+") or digits.startswith("81"):
        return "+" + digits
    if digits.startswith("0"):
        return "+81" + digits[1:]
    return "+" + digits


def submit_times(stamp: str) -> list[datetime]:
    """The instants a receipt's "submit date" (YYMMDDhhmm[ss]) can mean, on the clocks SMSCs use."""
    layout = {10: "%y%m%d%H%M", 12: "%y%m%d%H%M%S"}.get(len(stamp))
    if layout is None or not stamp.isdigit():
        return []
    try:
        local = datetime.strptime(stamp, layout)
    except ValueError:
        return []
    return [local.replace(tzinfo=zone) for zone in _SMSC_CLOCKS]


def _fits(receipt: Receipt, received_at: datetime, message: Uncertain, window: timedelta) -> bool:
    if not received_at - window <= message.submitting_since <= received_at:
        return False
    times = submit_times(receipt.submit_date)
    return not times or any(abs(at - message.submitting_since) <= SUBMIT_DATE_TOLERANCE for at in times)


def reconcile(
    receipts: Sequence[tuple[int, Receipt, datetime]], messages: Sequence[Uncertain], window: timedelta
) -> dict[int, str]:
    """Receipt id → request_id for each receipt that fits exactly one message (never more receipts to a
    message than it has parts left)."""
    room = {m.request_id: m.segments - m.known_parts for m in messages}
    by_handset: dict[str, list[Uncertain]] = {}
    for message in messages:
        by_handset.setdefault(message.recipient, []).append(message)
    matched: dict[int, str] = {}
    for receipt_id, receipt, received_at in receipts:
        same_handset = by_handset.get(handset_e164(receipt.recipient), [])
        fitting = [m for m in same_handset if _fits(receipt, received_at, m, window)]
        if len(fitting) == 1 and room[fitting[0].request_id] > 0:
            matched[receipt_id] = fitting[0].request_id
            room[fitting[0].request_id] -= 1
    return matched

"""Delivery receipts (SMPP 3.4 appendix B text) and the outcome of a message from its parts' receipts."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

DELIVERED = "DELIVRD"
FINAL_STATES = ("DELIVRD", "UNDELIV", "EXPIRED", "REJECTD", "DELETED", "UNKNOWN")
_FIELD = re.compile(r"(?P<name>id|stat|err):(?P<value>\S*)", re.IGNORECASE)
_SUBMIT_DATE = re.compile(r"submit date:(?P<stamp>[0-9]{10}(?:[0-9]{2})?)", re.IGNORECASE)


@dataclass(frozen=True)
class Receipt:
    carrier_message_id: str
    state: str
    error_code: str
    # The handset's number as the SMSC wrote it (the receipt comes from it), "" when unknown.
    recipient: str = ""
    # "YYMMDDhhmm" (or with seconds) on the SMSC's clock, "" when the receipt has none.
    submit_date: str = ""


def parse_receipt(text: str, recipient: str = "") -> Receipt | None:
    """The id, final state, error and submit date of a receipt text; None when it is not a final receipt."""
    fields = {match["name"].lower(): match["value"] for match in _FIELD.finditer(text)}
    state = fields.get("stat", "").upper()
    if not fields.get("id") or state not in FINAL_STATES:
        return None
    submitted = _SUBMIT_DATE.search(text)
    return Receipt(
        fields["id"],
        state,
        fields.get("err", "")[:20],
        recipient[:32],
        submitted["stamp"] if submitted else "",
    )


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    state: str
    error_code: str


def outcome_of(part_receipts: Sequence[Receipt | None]) -> Outcome | None:
    """Delivered when every part was delivered; undelivered once all parts reported and one was not.

    None while a part still awaits its receipt.
    """
    if any(receipt is None for receipt in part_receipts):
        return None
    receipts = [receipt for receipt in part_receipts if receipt is not None]
    failed = [receipt for receipt in receipts if receipt.state != DELIVERED]
    if not failed:
        return Outcome(True, DELIVERED, "")
    return Outcome(False, failed[0].state, failed[0].error_code)

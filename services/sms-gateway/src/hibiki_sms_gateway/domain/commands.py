"""What routing asks sms-gateway to do."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SendSms:
    """Send an SMS box's content to a recipient, at most once per request_id."""

    request_id: str
    call_id: str
    box_number: str
    # As routing wrote it (E.164 when it is a number that can receive; admission refuses the others).
    recipient: str
    dialed_number: str
    route_id: str
    recipient_captured: bool = False

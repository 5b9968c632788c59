"""One SMS request as the gateway keeps it: recipient, state, and the exact content that was sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hibiki_sms_gateway.domain.lifecycle import MessageState
from hibiki_sms_gateway.domain.message_text import render, split_parts
from hibiki_sms_gateway.domain.sms_box import SmsBox


@dataclass(frozen=True)
class Snapshot:
    """The box content at the moment of sending (the box may change later)."""

    box_number: str
    box_name: str = ""
    box_revision: int = 0
    message_text: str = ""
    url: str = ""
    rendered_text: str = ""
    segments: int = 0

    @classmethod
    def of(cls, box: SmsBox, short_link: str = "") -> Snapshot:
        """The content as sent; a tracked short link replaces the box URL in the text, not in `url`."""
        rendered = render(box.message_text, short_link or box.url)
        return cls(
            box.box_number,
            box.box_name,
            box.revision,
            box.message_text,
            box.url,
            rendered,
            len(split_parts(rendered)),
        )


@dataclass(frozen=True)
class SmsMessage:
    request_id: str
    tenant_id: str
    recipient: str
    state: MessageState
    reason: str
    carrier: str
    attempts: int
    snapshot: Snapshot
    created_at: datetime
    updated_at: datetime

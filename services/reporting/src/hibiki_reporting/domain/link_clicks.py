"""Short-link clicks per SMS box and day: how many sent SMS were opened, and how often."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class LinkClickRow:
    """SMS of one box requested on one day (Asia/Tokyo), and the opens of their short links."""

    day: date
    box_number: str
    # Accepted by a carrier (送信完了), whatever the receipt said later.
    sms_accepted: int
    sms_clicked: int
    clicks: int

    @property
    def click_through_rate(self) -> float:
        return self.sms_clicked / self.sms_accepted if self.sms_accepted else 0.0

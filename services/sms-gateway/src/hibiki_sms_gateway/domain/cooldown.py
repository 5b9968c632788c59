"""Per-recipient cooldown: a caller who dials again and again must not turn into an SMS pump."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class CooldownPolicy:
    """At most `max_sends` per `window` to one recipient, and never two within `min_interval`."""

    min_interval: timedelta = timedelta(seconds=60)
    max_sends: int = 5
    window: timedelta = timedelta(hours=24)

    def refusal(self, previous_sends: Sequence[datetime], now: datetime) -> str | None:
        """Why another SMS to this recipient must wait, or None when it may go out now."""
        recent = [sent for sent in previous_sends if now - sent < self.window]
        if recent and now - max(recent) < self.min_interval:
            return f"an SMS went to this recipient less than {self.min_interval.total_seconds():.0f}s ago"
        if len(recent) >= self.max_sends:
            return f"{len(recent)} SMS went to this recipient within {self.window}"
        return None

"""What the telephony platform asks routing to do: start a call, or let a started call go on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hibiki_routing.domain.calls import CallEvent


@dataclass(frozen=True)
class StartCall:
    """A caller reached a dialed number."""

    call_id: str
    dialed_number: str  # E.164
    # E.164 when the caller showed a number that can receive an SMS; "" otherwise (the call still runs).
    sms_reachable_caller: str
    withheld: bool
    at: datetime


@dataclass(frozen=True)
class ContinueCall:
    """Something happened in a started call (digits, a timeout, a finished prompt, a transfer, the end)."""

    call_id: str
    event: CallEvent


RoutingCommand = StartCall | ContinueCall

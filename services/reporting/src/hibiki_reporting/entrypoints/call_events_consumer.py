"""The call.events edge of reporting: a contract-checked record becomes an Observation of its call."""

from __future__ import annotations

from hibiki_runtime.events import CALL_EVENTS, DecodedEvent

from hibiki_reporting.adapters.events import call_fact
from hibiki_reporting.domain.observations import Observation, RecordKind, Touch


def observation(event: DecodedEvent) -> Observation:
    message = event.message
    call = Touch(RecordKind.CALL, message.call_id)  # type: ignore[attr-defined]
    return Observation((call,), call_fact=call_fact(CALL_EVENTS, message))


TRANSLATORS = {CALL_EVENTS: observation}

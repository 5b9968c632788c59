"""The call.actions edge of reporting: routing's decisions become Observations of their call."""

from __future__ import annotations

from hibiki_runtime.events import CALL_ACTIONS, DecodedEvent

from hibiki_reporting.adapters.events import call_fact
from hibiki_reporting.domain.observations import Observation, RecordKind, Touch


def observation(event: DecodedEvent) -> Observation:
    message = event.message
    call = Touch(RecordKind.CALL, message.call_id)  # type: ignore[attr-defined]
    return Observation((call,), call_fact=call_fact(CALL_ACTIONS, message))


TRANSLATORS = {CALL_ACTIONS: observation}

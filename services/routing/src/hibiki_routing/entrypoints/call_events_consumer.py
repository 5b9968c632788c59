"""The call.events edge of routing: a contract-checked record becomes a StartCall or ContinueCall.

The runtime has already refused records that break the contract (lengths, characters, E.164 dialed
numbers, DTMF keys); what is left here is what the contract cannot say: which step an action id answers.
"""

from __future__ import annotations

import re
from datetime import UTC

from hibiki.call.v1 import call_events_pb2 as pb
from hibiki_runtime.consumer import ConsumerEdge
from hibiki_runtime.events import CALL_EVENTS, DecodedEvent, InvalidEvent
from hibiki_runtime.phone import is_e164

from hibiki_routing.domain.calls import (
    CallEnded,
    CallTransferred,
    DigitsEntered,
    InputTimedOut,
    PromptFinished,
)
from hibiki_routing.domain.commands import ContinueCall, RoutingCommand, StartCall

# Step numbers are ASCII digits (str.isdigit() also accepts "²" and "٣", which int() then refuses).
_STEP = re.compile(r"[0-9]{1,9}")


def answered_step(call_id: str, action_id: str) -> int:
    """The step an event answers; -1 when the action id is not one of this call's (never awaited)."""
    prefix, _, number = action_id.rpartition(":")
    return int(number) if prefix == call_id and _STEP.fullmatch(number) else -1


def call_event_command(event: DecodedEvent) -> RoutingCommand:
    """The routing command of a call.events record (registered with runtime.consume)."""
    message = event.message
    assert isinstance(message, pb.CallEvent)
    call_id = message.call_id
    at = event.envelope.occurred_at.ToDatetime(tzinfo=UTC)
    match message.WhichOneof("body"):
        case "call_started":
            started = message.call_started
            caller = started.caller_number
            reachable = caller if is_e164(caller) and not started.caller_withheld else ""
            withheld = started.caller_withheld or not caller
            return StartCall(call_id, started.dialed_number, reachable, withheld, at)
        case "digits_collected":
            digits = message.digits_collected
            return ContinueCall(
                call_id, DigitsEntered(answered_step(call_id, digits.action_id), digits.digits, at)
            )
        case "input_timed_out":
            timed_out = message.input_timed_out
            step = answered_step(call_id, timed_out.action_id)
            return ContinueCall(call_id, InputTimedOut(step, timed_out.partial_digits, at))
        case "prompt_finished":
            step = answered_step(call_id, message.prompt_finished.action_id)
            return ContinueCall(call_id, PromptFinished(step, at))
        case "call_transferred":
            step = answered_step(call_id, message.call_transferred.action_id)
            return ContinueCall(call_id, CallTransferred(step, at))
        case "call_ended":
            return ContinueCall(call_id, CallEnded(at))
    raise InvalidEvent("unknown_schema", f"routing does not handle {message.WhichOneof('body')}")


TRANSLATORS = {CALL_EVENTS: call_event_command}
EDGE = ConsumerEdge(TRANSLATORS)

"""The session's call events as call.events records (CallEvent protobufs with their envelopes).

Event ids are deterministic, `<call_id>:<n>:<kind>` (n counts the call's events from 1), so a repeated
publication is deduplicated downstream; `causation_id` is the event id of the action answered; one call's
events share a trace derived from its id.
"""

from __future__ import annotations

from datetime import datetime

from google.protobuf.message import Message
from hibiki.call.v1 import call_events_pb2 as pb
from hibiki_runtime.events import CALL_EVENTS, new_envelope, traceparent_for

from hibiki_media_gateway.domain.session import (
    CallEnded,
    CallEvent,
    CallStarted,
    CallTransferred,
    DigitsCollected,
    EndReason,
    InputTimedOut,
    PromptFinished,
    TimeoutKind,
)

_END_REASONS = {
    EndReason.CALLER_HANGUP: pb.END_REASON_CALLER_HANGUP,
    EndReason.SYSTEM_HANGUP: pb.END_REASON_SYSTEM_HANGUP,
    EndReason.TRANSFERRED: pb.END_REASON_TRANSFERRED,
    EndReason.NETWORK_ERROR: pb.END_REASON_NETWORK_ERROR,
    EndReason.PLATFORM_FAILURE: pb.END_REASON_PLATFORM_FAILURE,
}
_TIMEOUTS = {
    TimeoutKind.FIRST_DIGIT: pb.TIMEOUT_KIND_FIRST_DIGIT,
    TimeoutKind.INTER_DIGIT: pb.TIMEOUT_KIND_INTER_DIGIT,
}


def event_id(call_id: str, sequence: int, kind: str) -> str:
    return f"{call_id}:{sequence}:{kind}"


def call_event(
    tenant_id: str,
    call_id: str,
    sequence: int,
    event: CallEvent,
    occurred_at: datetime,
    causation_id: str = "",
) -> pb.CallEvent:
    """The CallEvent record of one event of a call."""
    message = pb.CallEvent(call_id=call_id)
    body: Message
    if isinstance(event, CallStarted):
        started = message.call_started
        started.dialed_number = event.dialed_number
        started.caller_number = event.caller_number
        started.caller_withheld = event.caller_withheld
        body = started
    elif isinstance(event, DigitsCollected):
        message.digits_collected.action_id = event.action_id
        message.digits_collected.digits = event.digits
        message.digits_collected.terminated_by_key = event.terminated_by_key
        body = message.digits_collected
    elif isinstance(event, InputTimedOut):
        message.input_timed_out.action_id = event.action_id
        message.input_timed_out.kind = _TIMEOUTS[event.timeout]
        message.input_timed_out.partial_digits = event.partial_digits
        body = message.input_timed_out
    elif isinstance(event, PromptFinished):
        message.prompt_finished.action_id = event.action_id
        body = message.prompt_finished
    elif isinstance(event, CallTransferred):
        message.call_transferred.action_id = event.action_id
        message.call_transferred.destination = event.destination
        body = message.call_transferred
    else:
        assert isinstance(event, CallEnded)
        message.call_ended.reason = _END_REASONS[event.reason]
        message.call_ended.during_action_id = event.during_action_id
        body = message.call_ended
    message.envelope.CopyFrom(
        new_envelope(
            tenant_id,
            body,
            event_id=event_id(call_id, sequence, event.kind),
            occurred_at=occurred_at,
            causation_id=causation_id,
            traceparent=traceparent_for(call_id),
        )
    )
    return message


def outgoing(message: pb.CallEvent) -> tuple[str, str, Message]:
    """The outbox entry (topic, key, message) of a CallEvent: keyed by call id."""
    return CALL_EVENTS, message.call_id, message

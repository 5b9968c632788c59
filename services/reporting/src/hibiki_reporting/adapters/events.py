"""Protobuf topic messages → domain facts, for the consumers' edge and for every fold of stored facts.

Enum numbers this version does not name (a newer producer) become "unknown", never an exception: the
facts stored by an earlier version are translated again at every fold.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.descriptor import EnumDescriptor
from google.protobuf.message import Message
from hibiki.call.v1 import call_actions_pb2, call_events_pb2
from hibiki.sms.v1 import sms_requests_pb2, sms_results_pb2
from hibiki_runtime.events import CALL_ACTIONS, CALL_EVENTS, SMS_REQUESTS, SMS_RESULTS, TOPIC_MESSAGES

from hibiki_reporting.domain.facts import (
    CallEnded,
    CallFact,
    CallStarted,
    CallTransferred,
    DigitsCollected,
    FallbackCause,
    InputKind,
    InputTimedOut,
    LinkClicked,
    MessageSnapshot,
    PromptIssued,
    PromptReason,
    SmsFact,
    SmsRequested,
    SmsRequestedByCall,
    SmsResultReported,
    SmsStatus,
    TargetIssued,
    TargetKind,
)

_PROMPT_REASONS = {
    call_actions_pb2.PROMPT_REASON_INVALID_INPUT: PromptReason.INVALID_INPUT,
    call_actions_pb2.PROMPT_REASON_TIMEOUT: PromptReason.TIMEOUT,
}
_INPUT_KINDS = {
    call_actions_pb2.INPUT_KIND_MOBILE_NUMBER: InputKind.MOBILE_NUMBER,
    call_actions_pb2.INPUT_KIND_MOBILE_NUMBER_CONFIRMATION: InputKind.MOBILE_NUMBER_CONFIRMATION,
}
_FALLBACK_CAUSES = {
    call_actions_pb2.FALLBACK_CAUSE_INVALID_INPUT: FallbackCause.INVALID_INPUT,
    call_actions_pb2.FALLBACK_CAUSE_TIMEOUT: FallbackCause.TIMEOUT,
}
_RESULT_STATUS = {
    "sms_accepted": SmsStatus.ACCEPTED,
    "sms_delivered": SmsStatus.DELIVERED,
    "sms_undelivered": SmsStatus.UNDELIVERED,
    "sms_rejected": SmsStatus.REJECTED,
    "sms_failed": SmsStatus.FAILED,
}


UNKNOWN = "unknown"


def occurred_at(message: Any) -> datetime:
    at: datetime = message.envelope.occurred_at.ToDatetime(tzinfo=UTC)
    return at


def enum_key(enum_type: EnumDescriptor, number: int, prefix: str) -> str:
    """ "REJECT_REASON_UNSUPPORTED_CARRIER" → "unsupported_carrier"; a number without a name → "unknown"."""
    value = enum_type.values_by_number.get(number)
    return UNKNOWN if value is None else value.name.removeprefix(prefix).lower()


def stored_message(topic: str, payload: bytes) -> Message:
    """A fact as stored (checked against the contract when it arrived, so only parsed again here)."""
    message = TOPIC_MESSAGES[topic]()
    message.ParseFromString(payload)
    return message


def call_fact(topic: str, message: Message) -> CallFact | None:
    """The fact a call.events, call.actions or sms.requests message tells about its call, if any."""
    if topic == CALL_EVENTS:
        assert isinstance(message, call_events_pb2.CallEvent)
        return _call_event_fact(message)
    if topic == CALL_ACTIONS:
        assert isinstance(message, call_actions_pb2.CallAction)
        return _call_action_fact(message)
    if topic == SMS_REQUESTS:
        assert isinstance(message, sms_requests_pb2.SmsRequest)
        body = message.sms_requested
        return SmsRequestedByCall(occurred_at(message), message.request_id, body.dialed_number)
    raise ValueError(f"no call facts on {topic}")


def _call_event_fact(event: call_events_pb2.CallEvent) -> CallFact | None:
    at = occurred_at(event)
    match event.WhichOneof("body"):
        case "call_started":
            return CallStarted(at, event.call_started.dialed_number, event.call_started.caller_number)
        case "digits_collected":
            return DigitsCollected(at, event.digits_collected.action_id, event.digits_collected.digits)
        case "input_timed_out":
            return InputTimedOut(at, event.input_timed_out.action_id)
        case "call_transferred":
            return CallTransferred(at, event.call_transferred.action_id)
        case "call_ended":
            ended = event.call_ended
            reason = enum_key(call_events_pb2.EndReason.DESCRIPTOR, ended.reason, "END_REASON_")
            return CallEnded(at, reason, ended.during_action_id)
    return None  # PromptFinished changes nothing in the report


def _call_action_fact(action: call_actions_pb2.CallAction) -> CallFact | None:
    at, step, action_id = occurred_at(action), action.step, action.action_id
    # A cause this version does not name is read as no fallback (nothing is added to either limit).
    fallback = _FALLBACK_CAUSES.get(action.fallback, FallbackCause.NONE)
    match action.WhichOneof("body"):
        case "play_and_collect":
            body = action.play_and_collect
            return PromptIssued(
                at,
                step,
                action_id,
                body.route_id,
                body.route_name,
                _PROMPT_REASONS.get(body.reason, PromptReason.INITIAL),
                body.invalid_attempts,
                body.timeout_attempts,
                _INPUT_KINDS.get(body.input_kind, InputKind.MENU_CHOICE),
                fallback,
                action.flow_id,
            )
        case "play":
            route = action.play.route_id
            return TargetIssued(at, step, action_id, TargetKind.ANNOUNCEMENT, route, fallback=fallback)
        case "transfer":
            route = action.transfer.route_id
            return TargetIssued(at, step, action_id, TargetKind.TRANSFER, route, fallback=fallback)
        case "hangup":
            hangup = action.hangup
            return TargetIssued(
                at, step, action_id, TargetKind.HANGUP, hangup.route_id, hangup.reason, fallback
            )
    return None


def sms_fact(topic: str, message: Message) -> SmsFact:
    """The fact an sms.requests or sms.results message tells about its SMS."""
    if topic == SMS_REQUESTS:
        assert isinstance(message, sms_requests_pb2.SmsRequest)
        body = message.sms_requested
        return SmsRequested(
            occurred_at(message),
            body.call_id,
            body.box_number,
            body.recipient,
            body.dialed_number,
            body.route_id,
            body.recipient_captured,
        )
    if topic == SMS_RESULTS:
        assert isinstance(message, sms_results_pb2.SmsResult)
        if message.WhichOneof("body") == "sms_link_clicked":
            return LinkClicked(occurred_at(message), message.sms_link_clicked.click_number)
        return _sms_result_fact(message)
    raise ValueError(f"no SMS facts on {topic}")


def _sms_result_fact(result: sms_results_pb2.SmsResult) -> SmsResultReported:
    which = result.WhichOneof("body") or ""
    body: Any = getattr(result, which)
    status = _RESULT_STATUS[which]
    reason: str = body.reason
    detail = ""
    if status is SmsStatus.REJECTED:
        reason = enum_key(sms_results_pb2.RejectReason.DESCRIPTOR, body.reason, "REJECT_REASON_")
        detail = body.detail
    elif status is SmsStatus.UNDELIVERED:
        detail = body.error_code
    elif status is SmsStatus.FAILED:
        detail = body.detail
    carrier = enum_key(
        sms_results_pb2.Carrier.DESCRIPTOR,
        getattr(body, "carrier", sms_results_pb2.CARRIER_UNSPECIFIED),
        "CARRIER_",
    )
    return SmsResultReported(
        occurred_at(result),
        status,
        reason,
        "" if carrier == "unspecified" else carrier,
        _snapshot(body.snapshot) if body.HasField("snapshot") else None,
        detail,
    )


def _snapshot(snapshot: sms_results_pb2.MessageSnapshot) -> MessageSnapshot:
    return MessageSnapshot(
        snapshot.box_number,
        snapshot.box_name,
        snapshot.message_text,
        snapshot.url,
        snapshot.box_revision,
        snapshot.rendered_text,
        snapshot.segments,
    )

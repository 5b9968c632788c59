"""The wire: CallAction protobufs → caller actions, caller events → CallEvent protobufs with envelopes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from google.protobuf.message import Message
from hibiki.call.v1 import call_actions_pb2, call_events_pb2
from hibiki_runtime.events import new_envelope, traceparent_for

from hibiki_telephony_sim.behaviour import (
    Action,
    CallEnded,
    CallTransferred,
    DigitsCollected,
    EndReason,
    Event,
    Hangup,
    InputTimedOut,
    Play,
    PlayAndCollect,
    PromptFinished,
    PromptRef,
    Transfer,
)

_REASONS = {
    call_actions_pb2.PROMPT_REASON_UNSPECIFIED: "initial",
    call_actions_pb2.PROMPT_REASON_INITIAL: "initial",
    call_actions_pb2.PROMPT_REASON_INVALID_INPUT: "invalid_input",
    call_actions_pb2.PROMPT_REASON_TIMEOUT: "timeout",
}
_END_REASONS = {
    EndReason.CALLER_HANGUP: call_events_pb2.END_REASON_CALLER_HANGUP,
    EndReason.SYSTEM_HANGUP: call_events_pb2.END_REASON_SYSTEM_HANGUP,
    EndReason.TRANSFERRED: call_events_pb2.END_REASON_TRANSFERRED,
}
_TIMEOUT_KINDS = {
    "first_digit": call_events_pb2.TIMEOUT_KIND_FIRST_DIGIT,
    "inter_digit": call_events_pb2.TIMEOUT_KIND_INTER_DIGIT,
}


class UnsupportedAction(ValueError):
    """A CallAction without a body this simulator knows."""


def _prompts(prompts: Iterable[call_actions_pb2.Prompt]) -> tuple[PromptRef, ...]:
    return tuple(PromptRef(p.guidance_id, p.audio_file_id, p.text) for p in prompts)


def action_from_proto(message: call_actions_pb2.CallAction) -> Action:
    which = message.WhichOneof("body")
    action_id, step = message.action_id, message.step
    if which == "play_and_collect":
        pac = message.play_and_collect
        return PlayAndCollect(
            action_id=action_id,
            step=step,
            prompts=_prompts(pac.prompts),
            max_digits=pac.max_digits,
            terminator=pac.terminator,
            first_digit_timeout=pac.first_digit_timeout.ToTimedelta().total_seconds(),
            inter_digit_timeout=pac.inter_digit_timeout.ToTimedelta().total_seconds(),
            route_id=pac.route_id,
            route_name=pac.route_name,
            reason=_REASONS.get(pac.reason, "initial"),
        )
    if which == "play":
        return Play(action_id, step, _prompts(message.play.prompts), message.play.route_id)
    if which == "transfer":
        transfer = message.transfer
        return Transfer(action_id, step, transfer.destination, _prompts(transfer.prompts), transfer.route_id)
    if which == "hangup":
        hangup = message.hangup
        return Hangup(action_id, step, _prompts(hangup.prompts), hangup.reason, hangup.route_id)
    raise UnsupportedAction(f"call action {action_id!r} has body {which!r}")


def event_id(call_id: str, sequence: int, kind: str) -> str:
    """Deterministic id of the `sequence`-th event of a call: `<call_id>:<n>:<kind>`."""
    return f"{call_id}:{sequence}:{kind}"


def call_started(
    tenant_id: str,
    call_id: str,
    dialed_number: str,
    caller_number: str,
    withheld: bool,
    occurred_at: datetime,
) -> call_events_pb2.CallEvent:
    body = call_events_pb2.CallStarted(
        dialed_number=dialed_number, caller_number=caller_number, caller_withheld=withheld
    )
    message = call_events_pb2.CallEvent(call_id=call_id, call_started=body)
    message.envelope.CopyFrom(
        new_envelope(
            tenant_id,
            body,
            event_id=event_id(call_id, 1, "started"),
            occurred_at=occurred_at,
            traceparent=traceparent_for(call_id),
        )
    )
    return message


def to_proto(
    tenant_id: str,
    call_id: str,
    sequence: int,
    event: Event,
    occurred_at: datetime,
    causation_id: str = "",
) -> call_events_pb2.CallEvent:
    """The CallEvent for a caller event; its id is `<call_id>:<sequence>:<kind>`."""
    message = call_events_pb2.CallEvent(call_id=call_id)
    body: Message
    if isinstance(event, DigitsCollected):
        message.digits_collected.action_id = event.action_id
        message.digits_collected.digits = event.digits
        message.digits_collected.terminated_by_key = event.terminated_by_key
        body = message.digits_collected
    elif isinstance(event, InputTimedOut):
        message.input_timed_out.action_id = event.action_id
        message.input_timed_out.kind = _TIMEOUT_KINDS[event.timeout]
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

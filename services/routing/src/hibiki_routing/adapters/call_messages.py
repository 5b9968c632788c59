"""Domain call outputs → call.v1 / sms.v1 messages; ids derive from call id and step."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.message import Message
from hibiki.call.v1 import call_actions_pb2 as actions_pb
from hibiki.sms.v1 import sms_requests_pb2 as sms_pb
from hibiki_runtime.events import CALL_ACTIONS, SMS_REQUESTS, new_envelope

from hibiki_routing.domain.calls import (
    CallState,
    FallbackCause,
    HangUp,
    InputKind,
    Play,
    PlayAndCollect,
    Prompt,
    PromptReason,
    SendSms,
    Step,
    Transfer,
)

_REASONS = {
    PromptReason.INITIAL: actions_pb.PROMPT_REASON_INITIAL,
    PromptReason.INVALID_INPUT: actions_pb.PROMPT_REASON_INVALID_INPUT,
    PromptReason.TIMEOUT: actions_pb.PROMPT_REASON_TIMEOUT,
}
_INPUT_KINDS = {
    InputKind.MENU_CHOICE: actions_pb.INPUT_KIND_UNSPECIFIED,
    InputKind.MOBILE_NUMBER: actions_pb.INPUT_KIND_MOBILE_NUMBER,
    InputKind.MOBILE_NUMBER_CONFIRMATION: actions_pb.INPUT_KIND_MOBILE_NUMBER_CONFIRMATION,
}
_FALLBACK_CAUSES = {
    None: actions_pb.FALLBACK_CAUSE_UNSPECIFIED,
    FallbackCause.INVALID_INPUT: actions_pb.FALLBACK_CAUSE_INVALID_INPUT,
    FallbackCause.TIMEOUT: actions_pb.FALLBACK_CAUSE_TIMEOUT,
}


def step_id(call_id: str, step: int) -> str:
    """The deterministic id of a call's output: action id, SMS request id and event id alike."""
    return f"{call_id}:{step}"


def _prompts(prompts: Iterable[Prompt]) -> list[actions_pb.Prompt]:
    return [actions_pb.Prompt(guidance_id=p.guidance_id, text=p.text) for p in prompts]


def _action_body(
    action: PlayAndCollect | Play | Transfer | HangUp, message: actions_pb.CallAction
) -> Message:
    if isinstance(action, PlayAndCollect):
        body = message.play_and_collect
        body.prompts.extend(_prompts(action.prompts))
        body.max_digits = action.max_digits
        body.terminator = action.terminator
        body.first_digit_timeout.FromTimedelta(action.first_digit_timeout)
        body.inter_digit_timeout.FromTimedelta(action.inter_digit_timeout)
        body.route_id = action.route_id
        body.route_name = action.route_name
        body.reason = _REASONS[action.reason]
        body.invalid_attempts = action.invalid_attempts
        body.timeout_attempts = action.timeout_attempts
        body.input_kind = _INPUT_KINDS[action.input_kind]
        return body
    if isinstance(action, Play):
        message.play.CopyFrom(actions_pb.Play(prompts=_prompts(action.prompts), route_id=action.route_id))
        return message.play
    if isinstance(action, Transfer):
        message.transfer.CopyFrom(
            actions_pb.Transfer(
                destination=action.destination, prompts=_prompts(action.prompts), route_id=action.route_id
            )
        )
        return message.transfer
    message.hangup.CopyFrom(
        actions_pb.Hangup(prompts=_prompts(action.prompts), reason=action.reason, route_id=action.route_id)
    )
    return message.hangup


def outgoing(
    state: CallState, steps: Iterable[Step], cause_event_id: str, traceparent: str
) -> list[tuple[str, str, Message]]:
    """(topic, key, message) of each step, for the outbox; caused by event `cause_event_id`."""
    records: list[tuple[str, str, Message]] = []
    for step in steps:
        output, output_id = step.output, step_id(state.call_id, step.number)
        message: Message
        if isinstance(output, SendSms):
            requested = sms_pb.SmsRequested(
                call_id=state.call_id,
                box_number=output.box_number,
                recipient=output.recipient,
                dialed_number=output.dialed_number,
                route_id=output.route_id,
                recipient_captured=output.recipient_captured,
            )
            message = sms_pb.SmsRequest(request_id=output_id, sms_requested=requested)
            body: Message = message.sms_requested
            topic, key = SMS_REQUESTS, output_id
        else:
            message = actions_pb.CallAction(
                call_id=state.call_id,
                action_id=output_id,
                step=step.number,
                flow_id=state.flow_id,
                flow_version=state.flow_version,
                fallback=_FALLBACK_CAUSES[step.fallback],
            )
            body = _action_body(output, message)
            topic, key = CALL_ACTIONS, state.call_id
        envelope = new_envelope(
            state.tenant_id,
            body,
            event_id=output_id,
            causation_id=cause_event_id,
            traceparent=traceparent,
        )
        message.envelope.CopyFrom(envelope)
        records.append((topic, key, message))
    return records

"""routing.v1 protobuf messages ↔ domain flows (used by the gRPC API and to store definitions as JSON)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from hibiki.routing.v1 import routing_service_pb2 as pb
from hibiki_runtime.errors import InvalidArgument

from hibiki_routing.domain import flows as d
from hibiki_routing.domain.business_hours import format_clock, parse_clock
from hibiki_routing.domain.editing import Flow

_KIND_FROM_PB = {
    pb.GUIDANCE_CHOICE_KIND_UNSPECIFIED: d.GuidanceChoiceKind.SYSTEM_DEFAULT,
    pb.GUIDANCE_CHOICE_KIND_SYSTEM_DEFAULT: d.GuidanceChoiceKind.SYSTEM_DEFAULT,
    pb.GUIDANCE_CHOICE_KIND_ORIGINAL_GUIDANCE: d.GuidanceChoiceKind.ORIGINAL_GUIDANCE,
    pb.GUIDANCE_CHOICE_KIND_NONE: d.GuidanceChoiceKind.NONE,
}
_KIND_TO_PB = {
    d.GuidanceChoiceKind.SYSTEM_DEFAULT: pb.GUIDANCE_CHOICE_KIND_SYSTEM_DEFAULT,
    d.GuidanceChoiceKind.ORIGINAL_GUIDANCE: pb.GUIDANCE_CHOICE_KIND_ORIGINAL_GUIDANCE,
    d.GuidanceChoiceKind.NONE: pb.GUIDANCE_CHOICE_KIND_NONE,
}


def flow_from_pb(message: pb.Flow, tenant_id: str) -> Flow:
    """The domain draft of a request's flow; proto3 zero values mean the documented defaults."""
    return Flow(
        id=message.id,
        tenant_id=tenant_id,
        name=message.name,
        dialed_number=message.dialed_number,
        definition=definition_from_pb(message),
        revision=message.revision,
        published_version=message.published_version,
    )


def flow_to_pb(flow: Flow) -> pb.Flow:
    message = definition_to_pb(flow.definition)
    message.id = flow.id
    message.name = flow.name
    message.dialed_number = flow.dialed_number
    message.revision = flow.revision
    message.published_version = flow.published_version
    if flow.update_time is not None:
        message.update_time.FromDatetime(flow.update_time)
    return message


def definition_from_pb(message: pb.Flow) -> d.FlowDefinition:
    nodes = tuple(_node_from_pb(node, f"flow.nodes[{i}]") for i, node in enumerate(message.nodes))
    rejection = message.caller_rejection
    return d.FlowDefinition(
        entry_node_id=message.entry_node_id,
        nodes=nodes,
        caller_rejection=d.CallerRejection(
            rejection.reject_withheld, rejection.reject_blocklisted, rejection.announcement_guidance_id
        ),
    )


def definition_to_pb(definition: d.FlowDefinition) -> pb.Flow:
    rejection = definition.caller_rejection
    message = pb.Flow(
        entry_node_id=definition.entry_node_id, nodes=[_node_to_pb(n) for n in definition.nodes]
    )
    if rejection != d.CallerRejection():
        message.caller_rejection.CopyFrom(
            pb.CallerRejection(
                reject_withheld=rejection.reject_withheld,
                reject_blocklisted=rejection.reject_blocklisted,
                announcement_guidance_id=rejection.announcement_guidance_id,
            )
        )
    return message


def definition_to_json(definition: d.FlowDefinition) -> dict[str, Any]:
    """A JSON document of the definition, in the API's own field names (readable in the database)."""
    return json_format.MessageToDict(definition_to_pb(definition), preserving_proto_field_name=True)


def definition_from_json(document: dict[str, Any]) -> d.FlowDefinition:
    return definition_from_pb(json_format.ParseDict(document, pb.Flow()))


def _duration(value: Duration, default: timedelta) -> timedelta:
    return value.ToTimedelta() if value.seconds or value.nanos else default


def _choice(message: pb.GuidanceChoice) -> d.GuidanceChoice:
    return d.GuidanceChoice(
        _KIND_FROM_PB.get(message.kind, d.GuidanceChoiceKind.SYSTEM_DEFAULT), message.guidance_id
    )


def _choice_to_pb(choice: d.GuidanceChoice) -> pb.GuidanceChoice:
    return pb.GuidanceChoice(kind=_KIND_TO_PB[choice.kind], guidance_id=choice.guidance_id)


def _capture(message: pb.MobileNumberCapture) -> d.MobileNumberCapture:
    return d.MobileNumberCapture(
        prompt_guidance_id=message.prompt_guidance_id,
        invalid_input_guidance=_choice(message.invalid_input_guidance),
        input_timeout_guidance=_choice(message.input_timeout_guidance),
        max_invalid_attempts=message.max_invalid_attempts or d.DEFAULT_MAX_ATTEMPTS,
        max_timeout_attempts=message.max_timeout_attempts or d.DEFAULT_MAX_ATTEMPTS,
        fallback_node_id=message.fallback_node_id,
    )


def _clock(text: str, field: str) -> int:
    try:
        return parse_clock(text)
    except ValueError as error:
        raise InvalidArgument.field(field, f"{error}; use HH:MM (24:00 allowed as an end)") from error


def _node_from_pb(message: pb.Node, at: str) -> d.Node:
    which = message.WhichOneof("kind")
    kind: d.NodeKind
    if which == "menu":
        m = message.menu
        kind = d.MenuNode(
            prompt_guidance_id=m.prompt_guidance_id,
            digit_targets=dict(m.digit_targets),
            max_digits=m.max_digits or 1,
            terminator=m.terminator,
            first_digit_timeout=_duration(m.first_digit_timeout, d.DEFAULT_FIRST_DIGIT_TIMEOUT),
            inter_digit_timeout=_duration(m.inter_digit_timeout, d.DEFAULT_INTER_DIGIT_TIMEOUT),
            invalid_input_guidance=_choice(m.invalid_input_guidance),
            input_timeout_guidance=_choice(m.input_timeout_guidance),
            max_invalid_attempts=m.max_invalid_attempts or d.DEFAULT_MAX_ATTEMPTS,
            max_timeout_attempts=m.max_timeout_attempts or d.DEFAULT_MAX_ATTEMPTS,
            fallback_node_id=m.fallback_node_id,
        )
    elif which == "announcement":
        kind = d.AnnouncementNode(message.announcement.guidance_id, message.announcement.next_node_id)
    elif which == "send_sms":
        s = message.send_sms
        kind = d.SendSmsNode(
            s.box_number,
            s.announcement_guidance_id,
            s.next_node_id,
            _capture(s.mobile_number_capture) if s.HasField("mobile_number_capture") else None,
        )
    elif which == "transfer":
        kind = d.TransferNode(message.transfer.destination, message.transfer.announcement_guidance_id)
    elif which == "hangup":
        kind = d.HangupNode(message.hangup.announcement_guidance_id)
    elif which == "business_hours":
        b = message.business_hours
        windows = tuple(
            d.TimeWindow(
                frozenset(w.weekdays),
                _clock(w.start_time, f"{at}.business_hours.windows[{i}].start_time"),
                _clock(w.end_time, f"{at}.business_hours.windows[{i}].end_time"),
            )
            for i, w in enumerate(b.windows)
        )
        kind = d.BusinessHoursNode(
            b.open_node_id, b.closed_node_id, windows, b.closed_on_public_holidays, frozenset(b.closed_dates)
        )
    else:
        raise InvalidArgument.field(
            f"{at}.kind", "set one of menu, announcement, send_sms, transfer, hangup, business_hours"
        )
    return d.Node(message.id, kind, message.name)


def _node_to_pb(node: d.Node) -> pb.Node:
    message = pb.Node(id=node.id, name=node.name)
    kind = node.kind
    if isinstance(kind, d.MenuNode):
        m = message.menu
        m.prompt_guidance_id = kind.prompt_guidance_id
        m.digit_targets.update(kind.digit_targets)
        m.max_digits = kind.max_digits
        m.terminator = kind.terminator
        m.first_digit_timeout.FromTimedelta(kind.first_digit_timeout)
        m.inter_digit_timeout.FromTimedelta(kind.inter_digit_timeout)
        for target, choice in (
            (m.invalid_input_guidance, kind.invalid_input_guidance),
            (m.input_timeout_guidance, kind.input_timeout_guidance),
        ):
            target.kind = _KIND_TO_PB[choice.kind]
            target.guidance_id = choice.guidance_id
        m.max_invalid_attempts = kind.max_invalid_attempts
        m.max_timeout_attempts = kind.max_timeout_attempts
        m.fallback_node_id = kind.fallback_node_id
    elif isinstance(kind, d.AnnouncementNode):
        message.announcement.SetInParent()
        message.announcement.guidance_id = kind.guidance_id
        message.announcement.next_node_id = kind.next_node_id
    elif isinstance(kind, d.SendSmsNode):
        message.send_sms.CopyFrom(
            pb.SendSmsNode(
                box_number=kind.box_number,
                announcement_guidance_id=kind.announcement_guidance_id,
                next_node_id=kind.next_node_id,
            )
        )
        capture = kind.mobile_number_capture
        if capture is not None:
            message.send_sms.mobile_number_capture.CopyFrom(
                pb.MobileNumberCapture(
                    prompt_guidance_id=capture.prompt_guidance_id,
                    invalid_input_guidance=_choice_to_pb(capture.invalid_input_guidance),
                    input_timeout_guidance=_choice_to_pb(capture.input_timeout_guidance),
                    max_invalid_attempts=capture.max_invalid_attempts,
                    max_timeout_attempts=capture.max_timeout_attempts,
                    fallback_node_id=capture.fallback_node_id,
                )
            )
    elif isinstance(kind, d.TransferNode):
        message.transfer.SetInParent()
        message.transfer.destination = kind.destination
        message.transfer.announcement_guidance_id = kind.announcement_guidance_id
    elif isinstance(kind, d.HangupNode):
        message.hangup.SetInParent()
        message.hangup.announcement_guidance_id = kind.announcement_guidance_id
    else:
        b = message.business_hours
        b.open_node_id = kind.open_node_id
        b.closed_node_id = kind.closed_node_id
        b.closed_on_public_holidays = kind.closed_on_public_holidays
        b.closed_dates.extend(sorted(kind.closed_dates))
        for window in kind.windows:
            b.windows.add(
                weekdays=sorted(window.weekdays),
                start_time=format_clock(window.start_minute),
                end_time=format_clock(window.end_minute),
            )
        b.SetInParent()
    return message

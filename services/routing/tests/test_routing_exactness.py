"""Exactness of what routing tells the platform and reporting: fallbacks, refused SMS, closing, capture."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from hibiki.call.v1 import call_actions_pb2 as actions_pb
from hibiki_routing.adapters.call_messages import outgoing
from hibiki_routing.domain.calls import (
    CallEvent,
    CallState,
    Decision,
    DigitsEntered,
    FallbackCause,
    InputKind,
    InputTimedOut,
    PlayAndCollect,
    Step,
)
from hibiki_routing.domain.engine import decide, start_call
from hibiki_routing.domain.flows import FlowDefinition, MenuNode, MobileNumberCapture, Node, SendSmsNode

from services.routing.tests.routing_flows import CALLER, DIALED, describe, sample_flow

AT = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Tokyo: open
LANDLINE = "+81612345678"


def call(caller: str = CALLER) -> CallState:
    return CallState("call-1", "tenant-a", "flow-1", 1, DIALED, caller)


def steps(flow: FlowDefinition, inputs: list[str], caller: str = CALLER) -> list[Step]:
    """Every step of a call answered with digits, or "timeout"."""
    decision: Decision = start_call(call(caller), flow, AT)
    taken = list(decision.steps)
    for given in inputs:
        step = decision.state.awaiting_step
        event: CallEvent = (
            InputTimedOut(step, "", AT) if given == "timeout" else DigitsEntered(step, given, AT)
        )
        decision = decide(decision.state, flow, event)
        taken.extend(decision.steps)
    return taken


def with_node(flow: FlowDefinition, node: Node) -> FlowDefinition:
    return replace(flow, nodes=tuple(node if n.id == node.id else n for n in flow.nodes))


def menu_falling_back_to(target: str) -> MenuNode:
    return MenuNode("g-menu", {"1": "sms", "2": "transfer", "9": "bye"}, fallback_node_id=target)


# --- 1. the action that enters a fallback says so, whatever kind of action it is ---------------------------


def test_the_action_entering_a_fallback_menu_is_marked_with_the_invalid_input_limit() -> None:
    flow = sample_flow(menu_falling_back_to("second"))
    flow = replace(
        flow, nodes=(*flow.nodes, Node("second", MenuNode("g-second", {"1": "bye"}), "サブメニュー"))
    )
    taken = steps(flow, ["7", "8", "0"])
    assert [describe(s.output) for s in taken][-1] == "collect second initial [g-second] i0 t0"
    assert [s.fallback for s in taken] == [None, None, None, FallbackCause.INVALID_INPUT]


def test_the_fallback_mark_is_on_the_announcement_hang_up_or_after_an_sms_request() -> None:
    announced = steps(sample_flow(), ["timeout", "timeout", "timeout"])
    assert describe(announced[-1].output) == "play fallback [g-fallback]"
    assert announced[-1].fallback is FallbackCause.TIMEOUT

    to_sms = steps(sample_flow(menu_falling_back_to("sms")), ["7", "7", "7"])
    assert [describe(s.output) for s in to_sms[-2:]] == [
        "sms box 100 to +819012345678",
        "hangup completed [g-sms-sent]",
    ]
    # An SMS request is not a call action: the mark goes on the hang-up that follows it.
    assert [s.fallback for s in to_sms[-2:]] == [None, FallbackCause.INVALID_INPUT]


def test_later_actions_of_the_call_are_not_marked() -> None:
    flow = sample_flow(menu_falling_back_to("second"))
    second = Node("second", MenuNode("g-second", {"1": "bye"}), "サブメニュー")
    flow = replace(flow, nodes=(*flow.nodes, second))
    taken = steps(flow, ["7", "7", "7", "1"])
    assert [s.fallback for s in taken][-2:] == [FallbackCause.INVALID_INPUT, None]


def test_the_fallback_cause_is_published_on_the_call_action() -> None:
    taken = steps(sample_flow(), ["7", "8", "0"])
    records = outgoing(call(), taken, "ev-1", "")
    causes = [message.fallback for _, _, message in records if isinstance(message, actions_pb.CallAction)]
    assert causes == [actions_pb.FALLBACK_CAUSE_UNSPECIFIED] * 3 + [actions_pb.FALLBACK_CAUSE_INVALID_INPUT]


# --- 8. an SMS route says "sent" only for a request that will be sent ---------------------------------------


def test_a_landline_caller_without_number_capture_is_told_the_sms_cannot_be_sent() -> None:
    taken = steps(sample_flow(), ["1"], caller=LANDLINE)
    assert [describe(s.output) for s in taken][1:] == [
        f"sms box 100 to {LANDLINE}",  # refused by sms-gateway as landline_number, so the report shows why
        "hangup completed [system:sms_unavailable]",
    ]


def test_a_withheld_caller_choosing_sms_is_requested_as_withheld_and_told_it_cannot_be_sent() -> None:
    taken = steps(sample_flow(), ["1"], caller="")
    assert [describe(s.output) for s in taken][1:] == [
        "sms box 100 to ",  # an empty recipient: sms-gateway refuses it with REJECT_REASON_WITHHELD_NUMBER
        "hangup completed [system:sms_unavailable]",
    ]


def test_a_refused_sms_with_a_next_node_plays_the_unavailable_prompt_before_going_on() -> None:
    flow = with_node(sample_flow(), Node("sms", SendSmsNode("100", "g-sms-sent", next_node_id="bye")))
    taken = steps(flow, ["1"], caller="")
    assert [describe(s.output) for s in taken][1:] == ["sms box 100 to ", "play sms [system:sms_unavailable]"]


def test_a_mobile_caller_still_hears_the_sent_announcement() -> None:
    taken = steps(sample_flow(), ["1"])
    assert describe(taken[-1].output) == "hangup completed [g-sms-sent]"


# --- 10. past the limit without a fallback node: a closing guidance, not a silent hang-up -------------------


def test_past_the_limit_without_a_fallback_node_the_caller_hears_the_closing_guidance() -> None:
    for inputs, cause in (
        (["7", "7", "7"], FallbackCause.INVALID_INPUT),
        (["timeout"] * 3, FallbackCause.TIMEOUT),
    ):
        last = steps(sample_flow(menu_falling_back_to("")), inputs)[-1]
        assert describe(last.output) == "hangup fallback [system:closing]"
        assert last.fallback is cause


def test_a_number_capture_without_a_fallback_node_closes_the_same_way() -> None:
    capture = MobileNumberCapture("g-capture", max_invalid_attempts=1)
    flow = with_node(
        sample_flow(), Node("sms", SendSmsNode("100", "g-sms-sent", mobile_number_capture=capture))
    )
    last = steps(flow, ["1", "123"], caller=LANDLINE)[-1]
    assert describe(last.output) == "hangup fallback [system:closing]"
    assert last.fallback is FallbackCause.INVALID_INPUT


# --- 9. the number capture of an SMS route is told apart from a menu choice ---------------------------------


def test_number_capture_prompts_say_what_they_collect() -> None:
    capture = MobileNumberCapture("g-capture")
    flow = with_node(
        sample_flow(), Node("sms", SendSmsNode("100", "g-sms-sent", mobile_number_capture=capture))
    )
    taken = steps(flow, ["1", "08011112222#", "x"], caller=LANDLINE)
    kinds = [s.output.input_kind for s in taken if isinstance(s.output, PlayAndCollect)]
    assert kinds == [
        InputKind.MENU_CHOICE,
        InputKind.MOBILE_NUMBER,
        InputKind.MOBILE_NUMBER_CONFIRMATION,
        InputKind.MOBILE_NUMBER_CONFIRMATION,  # the read-back again after an invalid answer
    ]
    published = [
        message.play_and_collect.input_kind
        for _, _, message in outgoing(call(LANDLINE), taken, "ev-1", "")
        if isinstance(message, actions_pb.CallAction)
    ]
    assert published == [
        actions_pb.INPUT_KIND_UNSPECIFIED,
        actions_pb.INPUT_KIND_MOBILE_NUMBER,
        actions_pb.INPUT_KIND_MOBILE_NUMBER_CONFIRMATION,
        actions_pb.INPUT_KIND_MOBILE_NUMBER_CONFIRMATION,
    ]

"""The call engine, table-driven: each case is a sequence of caller events and the outputs it must produce."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hibiki_routing.domain.calls import (
    CallEnded,
    CallEvent,
    CallState,
    CallTransferred,
    DigitsEntered,
    InputTimedOut,
    Outcome,
    PromptFinished,
)
from hibiki_routing.domain.engine import decide, not_in_service, start_call
from hibiki_routing.domain.flows import (
    FlowDefinition,
    GuidanceChoice,
    GuidanceChoiceKind,
    MenuNode,
    Node,
    SendSmsNode,
)

from services.routing.tests.routing_flows import CALLER, DIALED, describe, sample_flow

# A Tuesday, 10:00 in Tokyo: open.
OPEN_AT = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


def new_call(caller: str = CALLER) -> CallState:
    return CallState("call-1", "tenant-a", "flow-1", 1, DIALED, caller)


def run(
    flow: FlowDefinition, inputs: list[str], state: CallState | None = None
) -> tuple[CallState, list[str]]:
    """Start a call and answer the awaited action with each input: a digit string, "timeout", "finished"."""
    decision = start_call(state or new_call(), flow, OPEN_AT)
    outputs = [describe(o) for o in decision.outputs]
    for given in inputs:
        step = decision.state.awaiting_step
        event: CallEvent
        if given == "timeout":
            event = InputTimedOut(step, "", OPEN_AT)
        elif given == "finished":
            event = PromptFinished(step, OPEN_AT)
        else:
            event = DigitsEntered(step, given, OPEN_AT)
        decision = decide(decision.state, flow, event)
        outputs.extend(describe(o) for o in decision.outputs)
    return decision.state, outputs


INITIAL = "collect menu initial [g-menu] i0 t0"
INVALID = "system:invalid_input"
TIMEOUT = "system:input_timeout"
SMS_SENT = ["sms box 100 to +819012345678", "hangup completed [g-sms-sent]"]
FALLBACK = ["play fallback [g-fallback]"]

CASES = {
    "correct input first time": (["1"], [INITIAL, *SMS_SENT]),
    "timeout then correct": (
        ["timeout", "1"],
        [INITIAL, f"collect menu timeout [{TIMEOUT},g-menu] i0 t1", *SMS_SENT],
    ),
    "invalid three times goes to the fallback": (
        ["7", "8", "0"],
        [
            INITIAL,
            f"collect menu invalid_input [{INVALID},g-menu] i1 t0",
            f"collect menu invalid_input [{INVALID},g-menu] i2 t0",
            *FALLBACK,
        ],
    ),
    "mixed invalid and timeout are counted separately": (
        ["7", "timeout", "8", "timeout", "2"],
        [
            INITIAL,
            f"collect menu invalid_input [{INVALID},g-menu] i1 t0",
            f"collect menu timeout [{TIMEOUT},g-menu] i1 t1",
            f"collect menu invalid_input [{INVALID},g-menu] i2 t1",
            f"collect menu timeout [{TIMEOUT},g-menu] i2 t2",
            "transfer +81311112222 [g-transfer]",
        ],
    ),
    "three timeouts go to the fallback": (
        ["timeout", "timeout", "timeout", "finished"],
        [
            INITIAL,
            f"collect menu timeout [{TIMEOUT},g-menu] i0 t1",
            f"collect menu timeout [{TIMEOUT},g-menu] i0 t2",
            *FALLBACK,
            "hangup completed [g-bye]",
        ],
    ),
    "hang-up choice": (["9"], [INITIAL, "hangup completed [g-bye]"]),
}


@pytest.mark.parametrize(("inputs", "expected"), CASES.values(), ids=CASES.keys())
def test_call_engine_case(inputs: list[str], expected: list[str]) -> None:
    _, outputs = run(sample_flow(), inputs)
    assert outputs == expected


def test_steps_number_every_output_in_order() -> None:
    decision = start_call(new_call(), sample_flow(), OPEN_AT)
    decision = decide(decision.state, sample_flow(), DigitsEntered(1, "1", OPEN_AT))
    assert [s.number for s in decision.steps] == [2, 3]
    assert decision.state.step == 3
    assert decision.state.ended


def test_custom_guidance_choices_and_limits() -> None:
    menu = MenuNode(
        prompt_guidance_id="g-menu",
        digit_targets={"1": "sms"},
        invalid_input_guidance=GuidanceChoice(GuidanceChoiceKind.ORIGINAL_GUIDANCE, "g-oops"),
        input_timeout_guidance=GuidanceChoice(GuidanceChoiceKind.NONE),
        max_invalid_attempts=2,
        fallback_node_id="",
    )
    _, outputs = run(sample_flow(menu), ["timeout", "5", "5"])
    assert outputs == [
        INITIAL,
        "collect menu timeout [g-menu] i0 t1",
        "collect menu invalid_input [g-oops,g-menu] i1 t1",
        "hangup fallback [system:closing]",
    ]


def test_partial_digits_of_an_inter_digit_timeout_count_as_input() -> None:
    decision = start_call(new_call(), sample_flow(), OPEN_AT)
    decision = decide(decision.state, sample_flow(), InputTimedOut(1, "2", OPEN_AT))
    assert [describe(o) for o in decision.outputs] == ["transfer +81311112222 [g-transfer]"]
    ended = decide(decision.state, sample_flow(), CallTransferred(2, OPEN_AT))
    assert ended.state.ended and ended.outcome is Outcome.CALL_ENDED


def test_answers_to_an_older_action_are_ignored() -> None:
    decision = start_call(new_call(), sample_flow(), OPEN_AT)
    decision = decide(decision.state, sample_flow(), DigitsEntered(1, "7", OPEN_AT))
    stale = decide(decision.state, sample_flow(), DigitsEntered(1, "1", OPEN_AT))
    assert stale.outcome is Outcome.IGNORED_STALE
    assert stale.steps == () and stale.state == decision.state


def test_caller_hangup_ends_the_call_and_later_events_are_ignored() -> None:
    decision = start_call(new_call(), sample_flow(), OPEN_AT)
    ended = decide(decision.state, sample_flow(), CallEnded(OPEN_AT))
    assert ended.state.ended and ended.outcome is Outcome.CALL_ENDED
    late = decide(ended.state, sample_flow(), DigitsEntered(1, "1", OPEN_AT))
    assert late.outcome is Outcome.IGNORED_ENDED and late.steps == ()


def test_withheld_caller_gets_no_sms_announcement_and_hears_why() -> None:
    _, outputs = run(sample_flow(), ["1"], new_call(caller=""))
    # The request is refused by sms-gateway as withheld_number; the caller is not told it was sent.
    assert outputs == [INITIAL, "sms box 100 to ", "hangup completed [system:sms_unavailable]"]


def test_counters_are_kept_per_route() -> None:
    flow = sample_flow()
    state, _ = run(flow, ["7"])
    assert state.invalid_attempts == {"menu": 1}
    assert state.timeout_attempts == {}


def test_unknown_number_hears_not_in_service_and_is_hung_up() -> None:
    decision = not_in_service(replace(new_call(), flow_id="", flow_version=0))
    assert [describe(o) for o in decision.outputs] == ["hangup not_in_service [system:not_in_service]"]
    assert decision.steps[0].number == 1 and decision.state.ended


def test_a_target_missing_from_a_broken_version_hangs_up_with_flow_error() -> None:
    flow = FlowDefinition("menu", sample_flow().nodes[1:2])  # only the menu, its targets missing
    _, outputs = run(flow, ["1"])
    assert outputs == [INITIAL, "hangup flow_error []"]


@pytest.mark.parametrize(
    ("sms", "inputs", "expected"),
    [
        (
            SendSmsNode("100", "g-sms-sent", next_node_id="bye"),
            ["1", "finished"],
            [INITIAL, "sms box 100 to +819012345678", "play sms [g-sms-sent]", "hangup completed [g-bye]"],
        ),
        (
            SendSmsNode("100", next_node_id="bye"),
            ["1"],
            [INITIAL, "sms box 100 to +819012345678", "hangup completed [g-bye]"],
        ),
    ],
    ids=["announced, then the next node", "silent, straight to the next node"],
)
def test_send_sms_then_continue(sms: SendSmsNode, inputs: list[str], expected: list[str]) -> None:
    flow = sample_flow()
    nodes = tuple(Node("sms", sms) if n.id == "sms" else n for n in flow.nodes)
    _, outputs = run(replace(flow, nodes=nodes), inputs)
    assert outputs == expected

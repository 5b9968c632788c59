"""CallAction protobufs in, CallEvent protobufs (with valid envelopes) out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hibiki.call.v1 import call_actions_pb2, call_events_pb2
from hibiki_runtime.events import CALL_EVENTS, decode_event, new_envelope
from hibiki_telephony_sim.behaviour import (
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
from hibiki_telephony_sim.protocol import (
    UnsupportedAction,
    action_from_proto,
    call_started,
    event_id,
    to_proto,
    traceparent_for,
)

AT = datetime(2026, 7, 1, 3, 0, tzinfo=UTC)


def action(**body: object) -> call_actions_pb2.CallAction:
    message = call_actions_pb2.CallAction(call_id="c-1", action_id="c-1:2", step=2, **body)  # type: ignore[arg-type]
    which = message.WhichOneof("body")
    if which:
        message.envelope.CopyFrom(new_envelope("t", getattr(message, which), event_id="c-1:2"))
    return message


def test_play_and_collect_becomes_a_caller_action_with_seconds() -> None:
    pac = call_actions_pb2.PlayAndCollect(
        prompts=[call_actions_pb2.Prompt(guidance_id="g-1", text="1を押してください")],
        max_digits=1,
        terminator="#",
        route_id="r-1",
        route_name="main",
        reason=call_actions_pb2.PROMPT_REASON_INVALID_INPUT,
    )
    pac.first_digit_timeout.FromTimedelta(timedelta(seconds=5))
    pac.inter_digit_timeout.FromTimedelta(timedelta(milliseconds=2500))
    assert action_from_proto(action(play_and_collect=pac)) == PlayAndCollect(
        action_id="c-1:2",
        step=2,
        prompts=(PromptRef("g-1", "", "1を押してください"),),
        max_digits=1,
        terminator="#",
        first_digit_timeout=5.0,
        inter_digit_timeout=2.5,
        route_id="r-1",
        route_name="main",
        reason="invalid_input",
    )


def test_play_transfer_and_hangup_bodies() -> None:
    prompt = call_actions_pb2.Prompt(audio_file_id="a-1")
    assert action_from_proto(action(play=call_actions_pb2.Play(prompts=[prompt], route_id="r"))) == Play(
        "c-1:2", 2, (PromptRef(audio_file_id="a-1"),), "r"
    )
    transfer = call_actions_pb2.Transfer(destination="+81300001111", route_id="r")
    assert action_from_proto(action(transfer=transfer)) == Transfer("c-1:2", 2, "+81300001111", (), "r")
    hangup = call_actions_pb2.Hangup(reason="not_in_service")
    assert action_from_proto(action(hangup=hangup)) == Hangup("c-1:2", 2, (), "not_in_service", "")
    with pytest.raises(UnsupportedAction):
        action_from_proto(action())


def test_call_started_carries_a_valid_envelope_and_a_deterministic_id() -> None:
    message = call_started("demo", "run-000001", "+81312345678", "+819011112222", False, AT)
    decoded = decode_event(CALL_EVENTS, message.SerializeToString())
    assert decoded.event_id == "run-000001:1:started" == event_id("run-000001", 1, "started")
    assert decoded.tenant_id == "demo"
    assert decoded.envelope.schema == "hibiki.call.v1.CallStarted"
    assert decoded.envelope.occurred_at.ToDatetime(tzinfo=UTC) == AT
    assert decoded.envelope.traceparent == traceparent_for("run-000001")
    assert message.call_started.dialed_number == "+81312345678"


@pytest.mark.parametrize(
    ("event", "check"),
    [
        (
            DigitsCollected("c-1:2", "12", True),
            lambda m: m.digits_collected.digits == "12" and m.digits_collected.terminated_by_key,
        ),
        (
            InputTimedOut("c-1:2"),
            lambda m: m.input_timed_out.kind == call_events_pb2.TIMEOUT_KIND_FIRST_DIGIT,
        ),
        (PromptFinished("c-1:2"), lambda m: m.prompt_finished.action_id == "c-1:2"),
        (
            CallTransferred("c-1:2", "+81300001111"),
            lambda m: m.call_transferred.destination == "+81300001111",
        ),
        (
            CallEnded(EndReason.CALLER_HANGUP, "c-1:2"),
            lambda m: (
                m.call_ended.reason == call_events_pb2.END_REASON_CALLER_HANGUP
                and m.call_ended.during_action_id == "c-1:2"
            ),
        ),
        (
            CallEnded(EndReason.TRANSFERRED, "c-1:2"),
            lambda m: m.call_ended.reason == call_events_pb2.END_REASON_TRANSFERRED,
        ),
        (
            CallEnded(EndReason.SYSTEM_HANGUP),
            lambda m: m.call_ended.reason == call_events_pb2.END_REASON_SYSTEM_HANGUP,
        ),
    ],
)
def test_every_event_kind_encodes_and_decodes(event: Event, check: object) -> None:
    message = to_proto("demo", "c-1", 3, event, AT, causation_id="c-1:2")
    decoded = decode_event(CALL_EVENTS, message.SerializeToString())
    assert decoded.event_id == f"c-1:3:{event.kind}"
    assert decoded.envelope.causation_id == "c-1:2"
    assert decoded.envelope.schema == decoded.body.DESCRIPTOR.full_name
    assert callable(check) and check(decoded.message)

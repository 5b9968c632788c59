"""routing's call.events edge: records become StartCall / ContinueCall, or a dead letter with a reason."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hibiki.call.v1 import call_events_pb2
from hibiki_routing.domain.calls import DigitsEntered
from hibiki_routing.domain.commands import ContinueCall, StartCall
from hibiki_routing.entrypoints.call_events_consumer import answered_step
from hibiki_runtime.events import CALL_EVENTS, InvalidEvent

from services.routing.tests.routing_db import EDGE, WORKDAY_MORNING, call_event

TENANT = "tenant-a"


def started(caller: str = "+819012345678", withheld: bool = False, dialed: str = "+81312345678") -> StartCall:
    body = call_events_pb2.CallStarted(dialed_number=dialed, caller_number=caller, caller_withheld=withheld)
    command = EDGE.inbound(CALL_EVENTS, call_event(TENANT, "c1", "c1:started", call_started=body)).command
    assert isinstance(command, StartCall)
    return command


def test_a_started_call_carries_the_caller_only_when_an_sms_can_reach_it() -> None:
    assert started() == StartCall("c1", "+81312345678", "+819012345678", False, WORKDAY_MORNING)
    assert started(withheld=True).sms_reachable_caller == ""
    assert started(withheld=True).withheld
    assert started(caller="").withheld
    # A printable caller id that is not E.164 starts the call, but no SMS can go to it.
    assert started(caller="anonymous") == StartCall("c1", "+81312345678", "", False, WORKDAY_MORNING)


@pytest.mark.parametrize(
    ("action_id", "step"),
    [
        ("c1:3", 3),
        ("c1:²", -1),
        ("c1:٣", -1),
        ("c1:", -1),
        ("c2:3", -1),
        ("c1:1234567890", -1),
        ("c1:-1", -1),
    ],
)
def test_only_ascii_step_numbers_of_the_same_call_are_answers(action_id: str, step: int) -> None:
    assert answered_step("c1", action_id) == step


def test_digits_answering_a_non_ascii_step_are_a_stale_answer_not_a_crash() -> None:
    body = call_events_pb2.DigitsCollected(action_id="c1:²", digits="1")
    message = call_event(TENANT, "c1", "c1:digits", digits_collected=body)
    # "²" is not printable ASCII: the contract refuses such an action id before routing sees it.
    with pytest.raises(InvalidEvent, match=r"invalid_field: digits_collected\.action_id"):
        EDGE.inbound(CALL_EVENTS, message)
    # What the contract lets through still never reaches int(): the answer is to no step of the call.
    body.action_id = "c1:1x"
    command = EDGE.inbound(CALL_EVENTS, call_event(TENANT, "c1", "c1:d", digits_collected=body)).command
    assert command == ContinueCall("c1", DigitsEntered(-1, "1", WORKDAY_MORNING))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"call_started": call_events_pb2.CallStarted(dialed_number="0312345678")},
            "call_started.dialed_number",
        ),
        ({"call_started": call_events_pb2.CallStarted(dialed_number="+81312345678\n")}, "dialed_number"),
        (
            {
                "call_started": call_events_pb2.CallStarted(
                    dialed_number="+81312345678", caller_number="9" * 33
                )
            },
            "call_started.caller_number",
        ),
        ({"digits_collected": call_events_pb2.DigitsCollected(action_id="c1:1", digits="1２")}, "digits"),
        ({"call_ended": call_events_pb2.CallEnded(during_action_id="x" * 201)}, "during_action_id"),
    ],
)
def test_records_that_break_the_contract_are_refused_at_the_edge(body: dict[str, object], field: str) -> None:
    message = call_event(TENANT, "c1", "c1:x", **body)  # type: ignore[arg-type]
    with pytest.raises(InvalidEvent) as refused:
        EDGE.inbound(CALL_EVENTS, message)
    assert refused.value.reason == "invalid_field" and field in refused.value.detail


def test_an_end_reason_this_version_does_not_name_still_ends_the_call() -> None:
    message = call_event(TENANT, "c1", "c1:end", call_ended=call_events_pb2.CallEnded(reason=999))  # type: ignore[arg-type]
    command = EDGE.inbound(CALL_EVENTS, message).command
    assert isinstance(command, ContinueCall) and command.event.at == datetime(2026, 11, 24, 1, tzinfo=UTC)

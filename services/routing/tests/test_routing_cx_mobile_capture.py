"""Mobile number capture for callers whose number cannot receive SMS: keyed, read back, corrected, sent."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hibiki.call.v1 import call_events_pb2
from hibiki_routing.adapters.flow_codec import definition_from_json, definition_to_json
from hibiki_routing.adapters.metrics import RoutingMetrics
from hibiki_routing.domain.calls import CallState, PlayAndCollect, SendSms
from hibiki_routing.domain.dry_run import Keys, Silence, dry_run
from hibiki_routing.domain.editing import Flow
from hibiki_routing.domain.flows import (
    FlowDefinition,
    MobileNumberCapture,
    Node,
    SendSmsNode,
)
from hibiki_routing.domain.mobile_capture import (
    CONFIRM_DIGIT,
    CORRECT_DIGIT,
    can_receive_sms,
    keyed_mobile_number,
    readback,
)
from hibiki_routing.domain.system_prompts import READBACK_CONFIRM
from hibiki_routing.service_layer.call_events import CallEventsHandler
from hibiki_routing.service_layer.flows import FlowService
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.routing.tests.routing_db import call_event, deliveries, queued
from services.routing.tests.routing_flows import DIALED, describe, sample_flow

AT = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
LANDLINE = "+81612345678"
CAPTURE = MobileNumberCapture("g-capture", fallback_node_id="fallback")
CONFIRM = "system:readback_confirm"


def capturing_flow(capture: MobileNumberCapture = CAPTURE) -> FlowDefinition:
    flow = sample_flow()
    sms = Node("sms", SendSmsNode("100", "g-sms-sent", mobile_number_capture=capture), "SMS送信")
    return replace(flow, nodes=tuple(sms if n.id == "sms" else n for n in flow.nodes))


def call_from(caller: str) -> CallState:
    return CallState("call-1", "tenant-a", "flow-1", 1, DIALED, caller)


def outputs(caller: str, *script: Keys | Silence, flow: FlowDefinition | None = None) -> list[str]:
    run = dry_run(call_from(caller), flow or capturing_flow(), script, AT)
    return [describe(s.step.output) for s in run.steps]


@pytest.mark.parametrize(
    ("number", "can"),
    [
        ("+819012345678", True),
        ("+818012345678", True),
        ("+817012345678", True),
        ("+81312345678", False),
        ("+815012345678", False),
        ("+12025550123", False),
        ("", False),
    ],
)
def test_only_japanese_mobiles_can_receive_sms(number: str, can: bool) -> None:
    assert can_receive_sms(number) is can


def test_a_keyed_number_must_be_an_11_digit_mobile_and_is_read_back_in_groups() -> None:
    assert keyed_mobile_number("09012345678#") == "+819012345678"
    assert keyed_mobile_number("08012345678") == "+818012345678"
    assert [keyed_mobile_number(d) for d in ("0312345678#", "05012345678", "0901234567", "9012345678#")] == [
        None
    ] * 4
    spoken = readback("+819012345678")
    assert "".join(p.text for p in spoken) == "090-1234-5678でよろしければ1を、訂正は2を押してください。"
    assert [p.guidance_id for p in spoken[:5]] == [
        "system:digit-0", "system:digit-9", "system:digit-0", "system:pause", "system:digit-1"
    ]  # fmt: skip
    assert spoken[-1] == READBACK_CONFIRM and len(spoken) == 14
    assert f"{CONFIRM_DIGIT}を" in READBACK_CONFIRM.text and f"{CORRECT_DIGIT}を" in READBACK_CONFIRM.text


def test_a_landline_caller_keys_corrects_once_confirms_and_gets_exactly_one_sms() -> None:
    run = dry_run(
        call_from(LANDLINE),
        capturing_flow(),
        [Keys("1"), Keys("09012345678#"), Keys("2"), Keys("08087654321#"), Keys("1")],
        AT,
    )
    steps = [s.step.output for s in run.steps]
    assert [describe(o) for o in steps] == [
        "collect menu initial [g-menu] i0 t0",
        "collect sms initial [g-capture] i0 t0",
        f"collect sms initial [090-1234-5678,{CONFIRM}] i0 t0",
        "collect sms initial [g-capture] i0 t0",
        f"collect sms initial [080-8765-4321,{CONFIRM}] i0 t0",
        "sms box 100 to +818087654321",
        "hangup completed [g-sms-sent]",
    ]
    entry, readback = steps[1], steps[4]
    assert isinstance(entry, PlayAndCollect) and (entry.max_digits, entry.terminator) == (11, "#")
    assert isinstance(readback, PlayAndCollect) and readback.max_digits == 1
    assert "".join(p.text for p in readback.prompts[:13]) == "080-8765-4321"
    (sms,) = [o for o in steps if isinstance(o, SendSms)]
    assert sms.recipient_captured and sms.recipient == "+818087654321"
    assert run.state.ended and run.state.capture_phase is None


def test_invalid_entries_and_timeouts_follow_the_route_rules_and_fall_back_past_the_limit() -> None:
    assert outputs(LANDLINE, Keys("1"), Keys("0312345678#"), Keys("09012345678"), Silence(), Keys("7")) == [
        "collect menu initial [g-menu] i0 t0",
        "collect sms initial [g-capture] i0 t0",
        "collect sms invalid_input [system:invalid_input,g-capture] i1 t0",
        f"collect sms initial [090-1234-5678,{CONFIRM}] i1 t0",
        f"collect sms timeout [system:input_timeout,090-1234-5678,{CONFIRM}] i1 t1",
        f"collect sms invalid_input [system:invalid_input,090-1234-5678,{CONFIRM}] i2 t1",
    ]
    assert outputs(LANDLINE, Keys("1"), Keys("1#"), Keys("2#"), Keys("3#"))[-2:] == [
        "play fallback [g-fallback]",
        "hangup completed [g-bye]",
    ]


def test_mobile_callers_are_not_asked_and_withheld_callers_are() -> None:
    assert outputs("+819011112222", Keys("1"))[1:] == [
        "sms box 100 to +819011112222",
        "hangup completed [g-sms-sent]",
    ]
    assert outputs("", Keys("1"))[1:] == ["collect sms initial [g-capture] i0 t0"]
    without = sample_flow()
    assert outputs(LANDLINE, Keys("1"), flow=without)[1] == f"sms box 100 to {LANDLINE}"


def test_the_capture_setting_is_stored_and_its_guidance_counts_as_used() -> None:
    flow = capturing_flow()
    assert definition_from_json(definition_to_json(flow)) == flow
    assert "g-capture" in flow.guidance_ids()


def event(call_id: str, tag: str, **body: object) -> call_events_pb2.CallEvent:
    return call_event("tenant-a", call_id, f"{call_id}:{tag}", **body)  # type: ignore[arg-type]


def keyed(call_id: str, step: int, digits: str) -> call_events_pb2.CallEvent:
    body = call_events_pb2.DigitsCollected(action_id=f"{call_id}:{step}", digits=digits)
    return event(call_id, f"digits:{step}", digits_collected=body)


async def test_the_capture_survives_between_events_and_one_request_goes_to_the_confirmed_number(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    service = FlowService(sessions)
    flow = await service.create(
        Flow("", "tenant-a", "代表番号", DIALED, replace(capturing_flow(), entry_node_id="hours"))
    )
    await service.publish("tenant-a", flow.id, flow.revision, "test")
    handler = CallEventsHandler(sessions, lambda: None, RoutingMetrics(CollectorRegistry()))
    started = call_events_pb2.CallStarted(dialed_number=DIALED, caller_number=LANDLINE)
    # One event per batch: every step reads the capture back from the database.
    for message in (
        event("cap", "started", call_started=started),
        keyed("cap", 1, "1"),
        keyed("cap", 2, "09012345678"),
        keyed("cap", 3, "2"),
        keyed("cap", 4, "07011112222#"),
        keyed("cap", 5, "1"),
        keyed("cap", 5, "1"),  # redelivered
    ):
        assert await handler(deliveries(message)) == []

    actions, requests = await queued(sessions)
    (request,) = requests
    body = request.sms_requested
    assert (body.recipient, body.recipient_captured, request.request_id) == ("+817011112222", True, "cap:6")
    assert ["".join(p.text for p in a.play_and_collect.prompts) for a in actions[2:5:2]] == [
        "090-1234-5678でよろしければ1を、訂正は2を押してください。",
        "070-1111-2222でよろしければ1を、訂正は2を押してください。",
    ]
    assert all(p.guidance_id for a in actions for p in a.play_and_collect.prompts)

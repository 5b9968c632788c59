"""Caller rejection of withheld and blocklisted numbers: in the engine, the codec and the call handler."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hibiki.call.v1 import call_events_pb2
from hibiki_routing.adapters.blocklist_repository import BlockedNumber
from hibiki_routing.adapters.flow_codec import definition_from_json, definition_to_json
from hibiki_routing.adapters.metrics import RoutingMetrics
from hibiki_routing.domain.calls import Caller, CallState, Outcome
from hibiki_routing.domain.editing import Flow
from hibiki_routing.domain.engine import start_call
from hibiki_routing.domain.flows import CallerRejection, FlowDefinition
from hibiki_routing.service_layer.blocklist import BlocklistService
from hibiki_routing.service_layer.call_events import CallEventsHandler
from hibiki_routing.service_layer.flows import FlowService
from hibiki_runtime.errors import AlreadyExists, InvalidArgument, NotFound
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.routing.tests.routing_db import call_event, deliveries, queued
from services.routing.tests.routing_flows import CALLER, DIALED, describe, sample_flow

TENANT = "tenant-a"
AT = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
BLOCKED = "+819099998888"


def rejecting(flow: FlowDefinition, announcement: str = "g-reject") -> FlowDefinition:
    return replace(flow, caller_rejection=CallerRejection(True, True, announcement))


def new_call(caller: str = CALLER) -> CallState:
    return CallState("call-1", TENANT, "flow-1", 1, DIALED, caller)


@pytest.mark.parametrize(
    ("caller", "announcement", "expected"),
    [
        (Caller(withheld=True), "g-reject", "hangup rejected_withheld [g-reject]"),
        (Caller(blocklisted=True), "", "hangup rejected_blocklist []"),
    ],
    ids=["withheld, with an announcement", "blocklisted, silent hang-up"],
)
def test_rejected_callers_are_hung_up_before_the_flow(
    caller: Caller, announcement: str, expected: str
) -> None:
    decision = start_call(new_call(""), rejecting(sample_flow(), announcement), AT, caller)
    assert [describe(o) for o in decision.outputs] == [expected]
    assert decision.outcome is Outcome.REJECTED and decision.state.ended


def test_callers_are_not_rejected_unless_the_flow_says_so() -> None:
    flow = replace(sample_flow(), caller_rejection=CallerRejection(reject_blocklisted=True))
    decision = start_call(new_call(""), flow, AT, Caller(withheld=True))
    assert [describe(o) for o in decision.outputs] == ["collect menu initial [g-menu] i0 t0"]
    assert decision.outcome is Outcome.ROUTED


def test_the_rejection_setting_is_stored_and_its_announcement_counts_as_used() -> None:
    flow = rejecting(sample_flow())
    assert definition_from_json(definition_to_json(flow)) == flow
    assert "g-reject" in flow.guidance_ids()
    assert "caller_rejection" not in definition_to_json(sample_flow())


def started(call_id: str, caller: str, withheld: bool = False) -> call_events_pb2.CallEvent:
    body = call_events_pb2.CallStarted(dialed_number=DIALED, caller_number=caller, caller_withheld=withheld)
    return call_event(TENANT, call_id, f"{call_id}:started", call_started=body)


async def test_the_call_handler_rejects_withheld_and_blocklisted_callers_of_the_tenant(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    flows, blocklist = FlowService(sessions), BlocklistService(sessions)
    flow = await flows.create(Flow("", TENANT, "代表番号", DIALED, rejecting(sample_flow(entry="hours"), "")))
    await flows.publish(TENANT, flow.id, flow.revision, "test")
    await blocklist.add(TENANT, BlockedNumber(BLOCKED, "いたずら電話"))
    await blocklist.add("tenant-b", BlockedNumber(CALLER))  # another tenant's list does not apply here
    registry = CollectorRegistry()
    handler = CallEventsHandler(sessions, lambda: None, RoutingMetrics(registry))

    await handler(deliveries(started("w", "", withheld=True), started("b", BLOCKED), started("ok", CALLER)))

    actions, _ = await queued(sessions)
    assert [(a.call_id, a.WhichOneof("body"), a.hangup.reason) for a in actions] == [
        ("w", "hangup", "rejected_withheld"),
        ("b", "hangup", "rejected_blocklist"),
        ("ok", "play_and_collect", ""),
    ]
    assert registry.get_sample_value("hibiki_routing_decisions_total", {"outcome": "rejected"}) == 2


async def test_blocklist_editing_checks_numbers_duplicates_and_tenants(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    blocklist = BlocklistService(sessions)
    added = await blocklist.add(TENANT, BlockedNumber(BLOCKED, "note"))
    assert added.create_time is not None
    with pytest.raises(AlreadyExists):
        await blocklist.add(TENANT, BlockedNumber(BLOCKED))
    with pytest.raises(InvalidArgument) as bad:
        await blocklist.add(TENANT, BlockedNumber("090-9999-888x"))
    assert [v.field for v in bad.value.violations] == ["blocked_number.number"]
    with pytest.raises(NotFound):
        await blocklist.remove("tenant-b", BLOCKED)
    await blocklist.add(TENANT, BlockedNumber("+819011110000"))
    first, after = await blocklist.page(TENANT, "", 1)
    second, last = await blocklist.page(TENANT, after, 1)
    assert [b.number for b in (*first, *second)] == ["+819011110000", BLOCKED] and last == ""
    await blocklist.remove(TENANT, BLOCKED)
    assert [b.number for b in (await blocklist.page(TENANT, "", 0))[0]] == ["+819011110000"]


async def test_a_dry_run_shows_the_rejection_of_a_blocklisted_caller(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    flows = FlowService(sessions)
    flow = await flows.create(Flow("", TENANT, "代表番号", DIALED, rejecting(sample_flow(entry="hours"))))
    await BlocklistService(sessions).add(TENANT, BlockedNumber(BLOCKED))
    run = await flows.dry_run(TENANT, flow.id, 0, [], BLOCKED, False, AT)
    assert [describe(s.step.output) for s in run.steps] == ["hangup rejected_blocklist [g-reject]"]
    withheld = await flows.dry_run(TENANT, flow.id, 0, [], "", True, AT)
    assert [describe(s.step.output) for s in withheld.steps] == ["hangup rejected_withheld [g-reject]"]

"""Flow dry-run: the engine's outputs for a scripted caller, from the domain and through FlowService."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hibiki_routing.adapters.tables import call_states
from hibiki_routing.domain.calls import CallState
from hibiki_routing.domain.dry_run import Keys, Silence, dry_run
from hibiki_routing.domain.editing import Flow
from hibiki_routing.domain.flows import MenuNode
from hibiki_routing.service_layer.flows import FlowService
from hibiki_runtime.errors import FailedPrecondition, InvalidArgument
from hibiki_runtime.outbox import outbox
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.routing.tests.routing_flows import CALLER, DIALED, describe, sample_flow

TENANT = "tenant-a"
# A Tuesday, 10:00 in Tokyo (open), and 20:00 (closed).
OPEN_AT = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
CLOSED_AT = datetime(2026, 11, 24, 11, 0, tzinfo=UTC)

# The seed's guidance example: the mistake's guidance, then the original prompt again.
SEED_REPROMPTS = [
    "collect menu initial [g-menu] i0 t0",
    "collect menu invalid_input [system:invalid_input,g-menu] i1 t0",
    "collect menu timeout [system:input_timeout,g-menu] i1 t1",
    f"sms box 100 to {CALLER}",
    "hangup completed [g-sms-sent]",
]


def new_call() -> CallState:
    return CallState("dry-run", TENANT, "flow-1", 0, DIALED, CALLER)


def test_wrong_digit_timeout_right_digit_gives_the_seed_reprompt_sequence() -> None:
    run = dry_run(new_call(), sample_flow(entry="hours"), [Keys("7"), Silence(), Keys("1")], OPEN_AT)
    assert [describe(s.step.output) for s in run.steps] == SEED_REPROMPTS
    assert [s.answered for s in run.steps] == ["", "7", "timeout", "1", "1"]
    assert [s.step.number for s in run.steps] == [1, 2, 3, 4, 5]
    assert run.state.ended and run.inputs_used == 3 and run.awaiting_route_id == ""


def test_a_script_that_runs_out_leaves_the_call_waiting_at_its_route() -> None:
    run = dry_run(new_call(), sample_flow(), [Keys("7")], OPEN_AT)
    assert not run.state.ended and run.awaiting_route_id == "menu" and run.inputs_used == 1


def test_announcements_are_listened_to_and_inputs_after_the_end_are_unused() -> None:
    run = dry_run(new_call(), sample_flow(), [Keys("7"), Keys("7"), Keys("7"), Keys("1")], OPEN_AT)
    assert [describe(s.step.output) for s in run.steps][-2:] == [
        "play fallback [g-fallback]",
        "hangup completed [g-bye]",
    ]
    assert run.steps[-1].answered == "prompt_finished"
    assert run.inputs_used == 3 and run.state.ended


def test_the_call_time_decides_business_hours() -> None:
    run = dry_run(new_call(), sample_flow(entry="hours"), [Keys("1")], CLOSED_AT)
    assert [describe(s.step.output) for s in run.steps] == ["hangup completed [g-closed]"]
    assert run.inputs_used == 0


def test_a_transfer_ends_the_dry_run() -> None:
    run = dry_run(new_call(), sample_flow(), [Keys("2")], OPEN_AT)
    assert describe(run.steps[-1].step.output) == "transfer +81311112222 [g-transfer]"
    assert run.state.ended and run.steps[-1].answered == "2"


async def test_dry_run_of_the_draft_and_of_a_version_touches_no_live_state(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    service = FlowService(sessions)
    flow = await service.create(Flow("", TENANT, "代表番号", DIALED, sample_flow(entry="hours")))
    await service.publish(TENANT, flow.id, flow.revision, "test")
    # The draft moves on: "1" now leads to the goodbye; version 1 still sends the SMS.
    menu = MenuNode("g-menu", {"1": "bye", "2": "sms", "3": "transfer"}, fallback_node_id="fallback")
    current = await service.get(TENANT, flow.id)
    edited = replace(current, definition=sample_flow(menu, entry="hours"))
    await service.update(TENANT, edited, ["nodes"], current.revision)

    draft = await service.dry_run(TENANT, flow.id, 0, [Keys("1")], CALLER, False, OPEN_AT)
    live = await service.dry_run(TENANT, flow.id, 1, [Keys("1")], CALLER, False, OPEN_AT)
    assert describe(draft.steps[-1].step.output) == "hangup completed [g-bye]"
    assert describe(live.steps[-2].step.output) == f"sms box 100 to {CALLER}"
    async with sessions() as session:
        for table in (outbox, call_states):
            assert (await session.execute(select(func.count()).select_from(table))).scalar() == 0


async def test_bad_scripts_and_unrunnable_drafts_are_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    service = FlowService(sessions)
    flow = await service.create(Flow("", TENANT, "代表番号", DIALED, sample_flow(entry="hours")))
    with pytest.raises(InvalidArgument) as bad_keys:
        await service.dry_run(TENANT, flow.id, 0, [Keys("1"), Keys("x")], CALLER, False, OPEN_AT)
    assert [v.field for v in bad_keys.value.violations] == ["inputs[1].digits"]
    with pytest.raises(InvalidArgument) as bad_caller:
        await service.dry_run(TENANT, flow.id, 0, [], "090-1234-567x", False, OPEN_AT)
    assert [v.field for v in bad_caller.value.violations] == ["caller_number"]
    broken = replace(flow, definition=replace(flow.definition, entry_node_id="nowhere"))
    await service.update(TENANT, broken, ["entry_node_id"], flow.revision)
    with pytest.raises(FailedPrecondition, match="the draft has problems"):
        await service.dry_run(TENANT, flow.id, 0, [], CALLER, False, OPEN_AT)

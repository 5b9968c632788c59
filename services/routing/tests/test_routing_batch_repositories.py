"""The repositories' reads and writes of a whole call.events batch, over a real (SQLite) database."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hibiki_routing.adapters.blocklist_repository import BlockedNumber, BlocklistRepository
from hibiki_routing.adapters.call_state_repository import CallStateRepository
from hibiki_routing.adapters.flow_repository import FlowRepository, LiveFlow
from hibiki_routing.domain.calls import CallState, CapturePhase
from hibiki_routing.domain.editing import Flow
from hibiki_routing.service_layer.flows import FlowService
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.routing.tests.routing_flows import CALLER, DIALED, sample_flow

TENANT = "tenant-a"
OTHER_DIALED = "+81398765432"


async def test_call_states_are_loaded_together_and_new_and_changed_ones_written_together(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    first = CallState("c1", TENANT, "flow-1", 1, DIALED, CALLER, node_id="menu", awaiting_step=1, step=1)
    second = replace(first, call_id="c2", invalid_attempts={"menu": 1})
    async with sessions() as session, session.begin():
        calls = CallStateRepository(session)
        assert await calls.load(["c1", "c2"]) == []
        calls.put(first)
        calls.put(second)
        await calls.flush()

    captured = replace(second, capture_phase=CapturePhase.CONFIRM, captured_number=CALLER, ended=True)
    async with sessions() as session, session.begin():
        calls = CallStateRepository(session)
        loaded = await calls.load(["c1", "c2", "c2", "unknown"])
        assert sorted(loaded, key=lambda s: s.call_id) == [first, second]
        assert calls.get("unknown") is None
        with pytest.raises(LookupError):
            calls.get("not-loaded")
        calls.put(captured)
        calls.put(replace(first, call_id="c3"))
        await calls.flush()

    async with sessions() as session:
        calls = CallStateRepository(session)
        await calls.load(["c1", "c2", "c3"])
        assert (calls.get("c1"), calls.get("c2")) == (first, captured)
        assert calls.get("c3") == replace(first, call_id="c3")


async def test_live_flows_and_definitions_are_read_for_many_numbers_and_versions_at_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    service = FlowService(sessions)
    published = await service.create(Flow("", TENANT, "代表番号", DIALED, sample_flow(entry="hours")))
    published = await service.publish(TENANT, published.id, published.revision, "test")
    await service.create(
        Flow("", "tenant-b", "下書き", OTHER_DIALED, sample_flow(entry="hours"))
    )  # never published

    async with sessions() as session:
        flows = FlowRepository(session)
        live = await flows.live_flows_for([DIALED, OTHER_DIALED, "+81300000000"])
        definitions = await flows.definitions({(published.id, 1), (published.id, 2), ("no-flow", 1)})

    assert live == {DIALED: LiveFlow(TENANT, published.id, 1)}
    assert definitions == {(published.id, 1): sample_flow(entry="hours")}


async def test_blocked_callers_are_found_per_tenant(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        blocklist = BlocklistRepository(session)
        await blocklist.add(TENANT, BlockedNumber(CALLER))
        await blocklist.add("tenant-b", BlockedNumber("+819011110000"))

        found = await blocklist.blocked_among(
            {(TENANT, CALLER), (TENANT, "+819011110000"), ("tenant-b", CALLER), ("tenant-b", "+819011110000")}
        )

    assert found == {(TENANT, CALLER), ("tenant-b", "+819011110000")}

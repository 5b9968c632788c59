"""The call.events handler works per batch: its SQL statements do not grow with the number of events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hibiki.call.v1 import call_events_pb2
from hibiki_routing.adapters.blocklist_repository import BlockedNumber
from hibiki_routing.adapters.metrics import RoutingMetrics
from hibiki_routing.domain.editing import Flow
from hibiki_routing.domain.flows import CallerRejection
from hibiki_routing.service_layer.blocklist import BlocklistService
from hibiki_routing.service_layer.call_events import CallEventsHandler
from hibiki_routing.service_layer.flows import FlowService
from prometheus_client import CollectorRegistry
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.routing.tests.routing_db import call_event, deliveries, migrated_database, queued
from services.routing.tests.routing_flows import CALLER, DIALED, sample_flow

TENANT = "tenant-a"
BLOCKED = "+819099998888"


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[tuple[AsyncEngine, async_sessionmaker[AsyncSession]]]:
    engine, sessions = await migrated_database(tmp_path)
    yield engine, sessions
    await engine.dispose()


@pytest.fixture
async def handler(database: tuple[AsyncEngine, async_sessionmaker[AsyncSession]]) -> CallEventsHandler:
    """A handler for a published flow that turns blocklisted callers away, so the blocklist is read."""
    _, sessions = database
    flows = FlowService(sessions)
    definition = replace(
        sample_flow(entry="hours"), caller_rejection=CallerRejection(reject_blocklisted=True)
    )
    flow = await flows.create(Flow("", TENANT, "代表番号", DIALED, definition))
    await flows.publish(TENANT, flow.id, flow.revision, "test")
    await BlocklistService(sessions).add(TENANT, BlockedNumber(BLOCKED))
    return CallEventsHandler(sessions, lambda: None, RoutingMetrics(CollectorRegistry()))


def started(call_id: str, caller: str = CALLER) -> call_events_pb2.CallEvent:
    body = call_events_pb2.CallStarted(dialed_number=DIALED, caller_number=caller)
    return call_event(TENANT, call_id, f"{call_id}:started", call_started=body)


def pressed(call_id: str, step: int, keys: str) -> call_events_pb2.CallEvent:
    body = call_events_pb2.DigitsCollected(action_id=f"{call_id}:{step}", digits=keys)
    return call_event(TENANT, call_id, f"{call_id}:digits:{step}", digits_collected=body)


def mixed_batch(prefix: str, calls: int) -> list[call_events_pb2.CallEvent]:
    """Every kind of work: answers of calls started earlier, new calls (one blocklisted, one answering in the
    same batch), a duplicate and an event that is rejected."""
    return [
        *(pressed(f"{prefix}-old-{n}", 1, "9") for n in range(calls)),
        *(started(f"{prefix}-new-{n}") for n in range(calls)),
        started(f"{prefix}-blocked", caller=BLOCKED),
        pressed(f"{prefix}-new-0", 1, "7"),
        pressed(f"{prefix}-new-0", 1, "7"),
        pressed(f"{prefix}-never-started", 1, "1"),
    ]


async def test_a_batch_runs_as_many_statements_for_100_calls_as_for_5(
    database: tuple[AsyncEngine, async_sessionmaker[AsyncSession]], handler: CallEventsHandler
) -> None:
    engine, _ = database
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    async def statements_for(prefix: str, calls: int) -> int:
        await handler(deliveries(*(started(f"{prefix}-old-{n}") for n in range(calls))))
        statements.clear()
        rejections = await handler(deliveries(*mixed_batch(prefix, calls)))
        assert [r.reason for r in rejections] == ["unknown_call"]
        return len(statements)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        small, large = await statements_for("s", 5), await statements_for("l", 100)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)

    # claim, release, 3 reads (states, live flows, blocklist; versions are cached) and 3 writes (outbox,
    # new states, changed states)
    assert small == large == 8


async def test_a_call_started_and_answered_in_one_batch_is_decided_in_order(
    database: tuple[AsyncEngine, async_sessionmaker[AsyncSession]], handler: CallEventsHandler
) -> None:
    _, sessions = database

    await handler(deliveries(started("c1"), pressed("c1", 1, "7"), started("c2", caller=BLOCKED)))
    # Answers the reprompt: the stored state is the one after both events of the first batch.
    assert await handler(deliveries(pressed("c1", 2, "9"))) == []

    actions, _ = await queued(sessions)
    assert [(a.action_id, a.WhichOneof("body")) for a in actions if a.call_id == "c1"] == [
        ("c1:1", "play_and_collect"),
        ("c1:2", "play_and_collect"),
        ("c1:3", "hangup"),
    ]
    assert [(a.action_id, a.hangup.reason) for a in actions if a.call_id == "c2"] == [
        ("c2:1", "rejected_blocklist")
    ]


async def test_an_event_repeated_in_a_batch_is_rejected_once_and_again_on_redelivery(
    handler: CallEventsHandler,
) -> None:
    never = pressed("never-started", 1, "1")
    batch = deliveries(never, never)

    first, again = await handler(batch), await handler(batch)

    assert [(r.reason, r.item.position) for r in first] == [("unknown_call", 0)]
    assert [(r.reason, r.item.position) for r in again] == [("unknown_call", 0)]

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest
from hibiki.call.v1 import call_actions_pb2
from hibiki_runtime.db import create_engine, session_factory, upgrade_to_head
from hibiki_runtime.events import CALL_ACTIONS, new_envelope
from hibiki_runtime.metrics import RuntimeMetrics
from hibiki_runtime.outbox import (
    OutboundRecord,
    OutboxRelay,
    claim_events,
    enqueue_all,
    first_claimed,
    release_claims,
)
from prometheus_client import CollectorRegistry

MIGRATIONS = Path(__file__).parents[3] / "services/routing/src/hibiki_routing/migrations"


def hangup(call_id: str, step: int) -> call_actions_pb2.CallAction:
    action = call_actions_pb2.CallAction(call_id=call_id, action_id=f"{call_id}:{step}", step=step)
    action.hangup.reason = "completed"
    action.envelope.CopyFrom(new_envelope("tenant-a", action.hangup, event_id=action.action_id))
    return action


async def test_claim_is_true_once_per_consumer_and_event(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await upgrade_to_head(engine, MIGRATIONS)
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        assert await claim_events(session, "consumer-a", ["e1"]) == {"e1"}
        assert await claim_events(session, "consumer-a", ["e1"]) == set()
        assert await claim_events(session, "consumer-b", ["e1"]) == {"e1"}
    async with sessions() as session, session.begin():
        assert await claim_events(session, "consumer-a", ["e1"]) == set()
    await engine.dispose()


async def test_batch_claim_returns_only_ids_not_seen_before_and_release_undoes_it(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await upgrade_to_head(engine, MIGRATIONS)
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        assert await claim_events(session, "consumer-a", ["e1", "e2", "e1"]) == {"e1", "e2"}
        assert await claim_events(session, "consumer-a", ["e2", "e3"]) == {"e3"}
        assert await claim_events(session, "consumer-b", ["e2"]) == {"e2"}
        assert await claim_events(session, "consumer-a", []) == set()
        await release_claims(session, "consumer-a", {"e3"})
    async with sessions() as session, session.begin():
        assert await claim_events(session, "consumer-a", ["e1", "e3"]) == {"e3"}
        assert await claim_events(session, "consumer-b", ["e2"]) == set()
    await engine.dispose()


async def test_relay_publishes_committed_rows_in_order_and_only_once(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await upgrade_to_head(engine, MIGRATIONS)
    sessions = session_factory(engine)
    sent: list[OutboundRecord] = []

    async def send(records: Sequence[OutboundRecord]) -> None:
        sent.extend(records)

    relay = OutboxRelay(engine, send, RuntimeMetrics("test", CollectorRegistry()), batch_size=2)
    async with sessions() as session, session.begin():
        await enqueue_all(session, [(CALL_ACTIONS, "c1", hangup("c1", step)) for step in (1, 2, 3)])
    async with sessions() as session, session.begin():
        await enqueue_all(session, [(CALL_ACTIONS, "c2", hangup("c2", 1))])
        await session.rollback()

    await relay.drain()
    await relay.drain()

    assert [call_actions_pb2.CallAction.FromString(r.value).action_id for r in sent] == [
        "c1:1",
        "c1:2",
        "c1:3",
    ]
    assert all(r.key == b"c1" and r.topic == CALL_ACTIONS for r in sent)
    assert sent[0].headers["event-id"] == "c1:1"
    await engine.dispose()


async def test_relay_keeps_rows_when_the_broker_fails(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await upgrade_to_head(engine, MIGRATIONS)
    sessions = session_factory(engine)
    attempts: list[int] = []

    async def flaky(records: Sequence[OutboundRecord]) -> None:
        attempts.append(len(records))
        if len(attempts) == 1:
            raise ConnectionError("broker down")

    relay = OutboxRelay(engine, flaky, RuntimeMetrics("test", CollectorRegistry()))
    async with sessions() as session, session.begin():
        await enqueue_all(session, [(CALL_ACTIONS, "c1", hangup("c1", 1))])
    with pytest.raises(ConnectionError):
        await relay.relay_once()
    assert await relay.relay_once() == 1
    assert await relay.relay_once() == 0
    assert attempts == [1, 1]
    await engine.dispose()


async def test_running_relay_publishes_on_notify_and_does_not_poll_an_empty_outbox(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await upgrade_to_head(engine, MIGRATIONS)
    sessions = session_factory(engine)
    published = asyncio.Event()
    sent: list[OutboundRecord] = []

    async def send(records: Sequence[OutboundRecord]) -> None:
        sent.extend(records)
        published.set()

    # An idle poll far beyond the test: only notify() can make the relay read again.
    relay = OutboxRelay(engine, send, RuntimeMetrics("test", CollectorRegistry()), idle_seconds=60)
    passes = 0
    relay_once = relay.relay_once

    async def counted() -> int:
        nonlocal passes
        passes += 1
        return await relay_once()

    relay.relay_once = counted  # type: ignore[method-assign]
    running = asyncio.create_task(relay.run())
    try:
        for call in ("c1", "c2"):
            published.clear()
            async with sessions() as session, session.begin():
                await enqueue_all(session, [(CALL_ACTIONS, call, hangup(call, 1))])
            relay.notify()
            await asyncio.wait_for(published.wait(), 5)
        await asyncio.sleep(0.2)
        assert [r.key for r in sent] == [b"c1", b"c2"]
        assert passes <= 3  # one pass per notify (plus the first), none on the empty outbox
    finally:
        relay.stop()
        await asyncio.wait_for(running, 5)
        await engine.dispose()


def test_first_claimed_keeps_order_and_drops_unclaimed_ids_and_repeats() -> None:
    batch = [("e1", "a"), ("e2", "b"), ("e1", "c"), ("e3", "d"), ("e2", "e")]
    kept = first_claimed(batch, {"e1", "e2"}, lambda item: item[0])
    assert kept == [("e1", "a"), ("e2", "b")]

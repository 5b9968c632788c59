"""Runtime signals the outbox and lag alerts rely on: relay errors, oldest pending age, lag ownership."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from hibiki.call.v1 import call_actions_pb2
from hibiki_runtime.db import create_engine, session_factory, upgrade_to_head
from hibiki_runtime.events import CALL_ACTIONS, new_envelope
from hibiki_runtime.kafka import record_consumer_lag
from hibiki_runtime.metrics import RuntimeMetrics
from hibiki_runtime.outbox import OutboundRecord, OutboxRelay, enqueue_all, outbox
from prometheus_client import CollectorRegistry
from sqlalchemy import update

from tests.observability.metric_refs import ROOT

MIGRATIONS = ROOT / "services/routing/src/hibiki_routing/migrations"


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def _hangup(call_id: str) -> call_actions_pb2.CallAction:
    action = call_actions_pb2.CallAction(call_id=call_id, action_id=f"{call_id}:1", step=1)
    action.hangup.reason = "completed"
    action.envelope.CopyFrom(new_envelope("tenant-a", action.hangup, event_id=action.action_id))
    return action


async def test_oldest_pending_age_grows_while_the_relay_fails_and_errors_are_counted(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await upgrade_to_head(engine, MIGRATIONS)
    registry = CollectorRegistry()
    broker_up = False

    async def send(records: Sequence[OutboundRecord]) -> None:
        if not broker_up:
            raise ConnectionError("broker down")

    relay = OutboxRelay(engine, send, RuntimeMetrics("test", registry))
    assert _value(registry, "hibiki_test_outbox_oldest_pending_age_seconds") == 0.0
    async with session_factory(engine)() as session, session.begin():
        await enqueue_all(session, [(CALL_ACTIONS, "c1", _hangup("c1"))])
        # as if the row had been committed ten minutes ago
        await session.execute(update(outbox).values(created_at=datetime.now(UTC) - timedelta(minutes=10)))

    for _ in range(2):
        with pytest.raises(ConnectionError):
            await relay.relay_once()
    age = _value(registry, "hibiki_test_outbox_oldest_pending_age_seconds")
    assert age is not None and 600 <= age < 660
    assert _value(registry, "hibiki_test_outbox_relay_errors_total") == 2

    broker_up = True
    assert await relay.relay_once() == 1
    assert _value(registry, "hibiki_test_outbox_oldest_pending_age_seconds") == 0.0
    assert _value(registry, "hibiki_test_outbox_relay_errors_total") == 2
    await engine.dispose()


@dataclass
class _FakeConsumer:
    """The three aiokafka consumer calls record_consumer_lag uses."""

    ends: dict[TopicPartition, int]
    commits: dict[TopicPartition, int] = field(default_factory=dict)

    def assignment(self) -> set[TopicPartition]:
        return set(self.ends)

    def highwater(self, partition: TopicPartition) -> int | None:
        return self.ends[partition]

    async def committed(self, partition: TopicPartition) -> int | None:
        return self.commits.get(partition)


@dataclass
class _FakeSubscriber:
    consumer: _FakeConsumer | None


@dataclass
class _FakeBroker:
    subscribers: list[_FakeSubscriber]


async def test_lag_series_of_partitions_rebalanced_away_disappear() -> None:
    registry = CollectorRegistry()
    metrics = RuntimeMetrics("test", registry)
    p0, p1, p2 = (TopicPartition("call.events", n) for n in range(3))
    consumer = _FakeConsumer({p0: 50, p1: 80, p2: 10}, {p0: 40, p1: 80})
    broker: Any = _FakeBroker([_FakeSubscriber(consumer), _FakeSubscriber(None)])

    await record_consumer_lag(broker, metrics)
    lag = "hibiki_test_consumer_lag_messages"
    assert _value(registry, lag, topic="call.events", partition="0") == 10
    assert _value(registry, lag, topic="call.events", partition="1") == 0
    assert _value(registry, lag, topic="call.events", partition="2") == 10  # nothing committed yet

    # a rebalance gives partitions 1 and 2 to another instance
    consumer.ends = {p0: 60}
    await record_consumer_lag(broker, metrics)
    assert _value(registry, lag, topic="call.events", partition="0") == 20
    assert _value(registry, lag, topic="call.events", partition="1") is None
    assert _value(registry, lag, topic="call.events", partition="2") is None

    # and one comes back
    consumer.ends = {p0: 60, p2: 30}
    await record_consumer_lag(broker, metrics)
    assert _value(registry, lag, topic="call.events", partition="2") == 30

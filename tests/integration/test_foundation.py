"""The foundation end to end: a protobuf CallStarted through the real broker to a service process."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from hibiki.call.v1 import call_actions_pb2, call_events_pb2
from hibiki_devstack.infra import Broker, Postgres
from hibiki_devstack.processes import health_status
from hibiki_devstack.stack import ServiceSpec, Stack
from hibiki_runtime import db
from hibiki_runtime.db import create_engine, session_factory, upgrade_to_head
from hibiki_runtime.events import CALL_ACTIONS, CALL_EVENTS, dlq_topic, new_envelope
from hibiki_runtime.outbox import claim_events, release_claims
from sqlalchemy import text

from tests.integration.conftest import TENANT, start_service
from tests.integration.kafka_io import produce, read_until

ROUTING_MIGRATIONS = Path(__file__).parents[2] / "services/routing/src/hibiki_routing/migrations"


def call_started(call_id: str, dialed: str) -> call_events_pb2.CallEvent:
    body = call_events_pb2.CallStarted(dialed_number=dialed, caller_number="+819012345678")
    event = call_events_pb2.CallEvent(call_id=call_id, call_started=body)
    event.envelope.CopyFrom(
        new_envelope(TENANT, body, event_id=f"{call_id}:started", occurred_at=datetime.now(UTC))
    )
    return event


def actions_for(records: list, call_id: str) -> list[call_actions_pb2.CallAction]:
    actions = [call_actions_pb2.CallAction.FromString(r.value) for r in records]
    return [a for a in actions if a.call_id == call_id]


@pytest.fixture(scope="module")
def routing(postgres: Postgres, stack: Stack) -> ServiceSpec:
    return start_service(
        stack, postgres, "routing", "hibiki_routing", HIBIKI_CONSUMER_LAG_INTERVAL_SECONDS="0.5"
    )


async def test_routing_answers_health_and_serves_metrics(routing: ServiceSpec) -> None:
    assert health_status(routing.grpc_port or 0) == "SERVING"
    assert health_status(routing.grpc_port or 0, "hibiki.routing.v1.RoutingService") == "SERVING"
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{routing.http_port}/metrics") as reply,
    ):
        assert reply.status == 200
        assert "hibiki_routing_build_info" in await reply.text()


async def test_malformed_event_goes_to_dlq_and_routing_keeps_consuming(
    kafka: Broker, routing: ServiceSpec
) -> None:
    poison = b"\xff\xfe this is not a protobuf CallEvent"

    await produce(
        kafka.bootstrap_servers,
        CALL_EVENTS,
        [("call-poison", poison), ("call-1", call_started("call-1", "+81399990000"))],
    )

    records = await read_until(
        kafka.bootstrap_servers, dlq_topic(CALL_EVENTS), lambda rs: any(r.key == b"call-poison" for r in rs)
    )
    dead = [r for r in records if r.key == b"call-poison"]
    assert [r.value for r in dead] == [poison]
    headers = dict(dead[0].headers)
    assert headers["dlq-reason"] == b"malformed"
    assert headers["dlq-source-topic"] == CALL_EVENTS.encode()

    records = await read_until(
        kafka.bootstrap_servers, CALL_ACTIONS, lambda rs: bool(actions_for(rs, "call-1"))
    )
    (action,) = actions_for(records, "call-1")
    assert action.WhichOneof("body") == "hangup"
    assert action.hangup.reason == "not_in_service"
    assert action.action_id == "call-1:1"
    assert action.envelope.tenant_id == TENANT
    assert action.envelope.causation_id == "call-1:started"

    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{routing.http_port}/metrics") as reply,
    ):
        metrics = await reply.text()
    assert 'hibiki_routing_dlq_messages_total{reason="malformed",topic="call.events"} 1.0' in metrics


async def test_redelivered_call_started_produces_no_second_action(
    kafka: Broker, routing: ServiceSpec
) -> None:
    event = call_started("call-dup", "+81399990001")
    await produce(kafka.bootstrap_servers, CALL_EVENTS, [("call-dup", event), ("call-dup", event)])
    marker = call_started("call-after-dup", "+81399990001")
    await produce(kafka.bootstrap_servers, CALL_EVENTS, [("call-dup", marker)])

    records = await read_until(
        kafka.bootstrap_servers, CALL_ACTIONS, lambda rs: bool(actions_for(rs, "call-after-dup"))
    )
    assert len(actions_for(records, "call-dup")) == 1


async def test_consumer_lag_is_exported_per_partition(kafka: Broker, routing: ServiceSpec) -> None:
    await produce(
        kafka.bootstrap_servers, CALL_EVENTS, [("call-lag", call_started("call-lag", "+81399990002"))]
    )
    await read_until(kafka.bootstrap_servers, CALL_ACTIONS, lambda rs: bool(actions_for(rs, "call-lag")))
    lag_lines: list[str] = []
    async with aiohttp.ClientSession() as http:
        for _ in range(40):
            async with http.get(f"http://127.0.0.1:{routing.http_port}/metrics") as reply:
                lag_lines = [
                    line
                    for line in (await reply.text()).splitlines()
                    if line.startswith('hibiki_routing_consumer_lag_messages{partition="')
                    and 'topic="call.events"' in line
                ]
            if lag_lines:
                break
            await asyncio.sleep(0.25)
    assert lag_lines, "no consumer lag samples for call.events"
    assert all(float(line.rsplit(" ", 1)[1]) >= 0 for line in lag_lines)


async def test_batch_claims_on_postgresql_skip_seen_and_repeated_ids(postgres: Postgres) -> None:
    postgres.create_database("foundation_claims")
    engine = create_engine(postgres.url("foundation_claims"))
    try:
        await upgrade_to_head(engine, ROUTING_MIGRATIONS)
        sessions = session_factory(engine)
        async with sessions() as session, session.begin():
            assert await claim_events(session, "c", ["e1", "e2", "e1"]) == {"e1", "e2"}
            await release_claims(session, "c", {"e2"})
        async with sessions() as session, session.begin():
            assert await claim_events(session, "c", ["e1", "e2", "e3"]) == {"e2", "e3"}
    finally:
        await engine.dispose()


async def test_a_pooled_connection_the_server_closed_while_idle_is_replaced(
    postgres: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_IDLE_AFTER_SECONDS", 0.2)
    postgres.create_database("foundation_idle")
    engine = create_engine(postgres.url("foundation_idle"), pool_size=1, max_overflow=0)
    admin = create_engine(postgres.url("foundation_idle"))
    try:
        async with engine.connect() as connection:
            first = await connection.scalar(text("SELECT pg_backend_pid()"))
        async with admin.begin() as connection:
            await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        await asyncio.sleep(0.3)  # idle long enough to be pinged
        async with engine.connect() as connection:  # no error: the dead connection was replaced
            assert await connection.scalar(text("SELECT pg_backend_pid()")) != first
    finally:
        await engine.dispose()
        await admin.dispose()

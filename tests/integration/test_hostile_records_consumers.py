"""Hostile records at every consumer, on PostgreSQL (the production database) with fresh timestamps.

Each service is wired by its own build_runtime on its own PostgreSQL database; the consumer edge and the
batch handler it registers are captured and fed exactly as the runtime feeds them (process_batch: edge,
handler, isolation of failing records), without a broker. Whatever the records hold, the consumer must not
raise (a raise is an infrastructure failure: the batch would be redelivered forever), every dead letter
names its reason, no record reaches a handler that then fails on it, and the good events of the same batch
are handled — the report counts each exactly once.

Two generators: every leaf field of every body of every topic set, one at a time, to values that broke
consumers before (over-long strings, NUL, non-ASCII digits, unknown enum numbers, extreme timestamps);
and hypothesis-generated messages and bytes (tests/security/proto_strategies.py).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from google.protobuf.message import Message
from hibiki.call.v1 import call_events_pb2 as events
from hibiki.sms.v1 import sms_results_pb2 as results
from hibiki_bench.hostile import GOOD_TENANT, every_body, good_event, one_hostile_field_each, topic_message
from hibiki_devstack.infra import Postgres, free_port
from hibiki_runtime import service as runtime_service
from hibiki_runtime.consumer import BatchHandler, BatchOutcome, ConsumerEdge, process_batch
from hibiki_runtime.db import upgrade_to_head
from hibiki_runtime.events import (
    CALL_ACTIONS,
    CALL_EVENTS,
    SMS_REQUESTS,
    SMS_RESULTS,
    TOPIC_MESSAGES,
)
from hibiki_runtime.outbox import processed_events
from hibiki_runtime.service import ServiceRuntime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from tests.security.proto_strategies import topic_records

OTHER_TENANT = "t-other"
TENANTS = [GOOD_TENANT, OTHER_TENANT]
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass(frozen=True)
class FakeRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()


@dataclass
class Consumer:
    name: str
    runtime: ServiceRuntime
    edge: ConsumerEdge[Any]
    handler: BatchHandler[Any]

    async def feed(self, topic: str, values: Sequence[bytes]) -> BatchOutcome:
        records = [FakeRecord(topic, 0, offset, b"key", value) for offset, value in enumerate(values)]
        outcome = await process_batch(records, self.edge, self.handler)  # raising = stuck forever
        failed = [(d.reason, d.detail) for d in outcome.dead if d.reason.startswith("handler_error")]
        assert not failed, f"{self.name}: records the edge let through failed in the handler: {failed}"
        for dead in outcome.dead:
            assert dead.reason and dead.detail, dead
        return outcome

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.runtime.sessions() as session:
            return await session.scalar(text(sql), params)


async def wired(
    build: Callable[[Any], ServiceRuntime], settings_type: Any, migrations: Any, url: str
) -> Consumer:
    """The service as build_runtime wires it, with the edge and handler it registered, on a migrated DB."""
    captured: dict[str, Any] = {}

    def capture(_broker: Any, *, edge: ConsumerEdge[Any], handler: BatchHandler[Any], **_: Any) -> None:
        captured.update(edge=edge, handler=handler)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runtime_service, "register_batch_consumer", capture)
        runtime = build(settings_type(database_url=url))
    await upgrade_to_head(runtime.engine, migrations)
    return Consumer(runtime.settings.service_name, runtime, captured["edge"], captured["handler"])


def database(postgres: Postgres, name: str) -> str:
    db = f"hostile_{name}_{free_port()}"
    postgres.create_database(db)
    return postgres.url(db)


@pytest.fixture(scope="module")
async def routing(postgres: Postgres) -> AsyncIterator[Consumer]:
    from hibiki_routing.entrypoints.main import MIGRATIONS, build_runtime
    from hibiki_routing.settings import RoutingSettings

    consumer = await wired(build_runtime, RoutingSettings, MIGRATIONS, database(postgres, "routing"))
    yield consumer
    await consumer.runtime.engine.dispose()


@pytest.fixture(scope="module")
async def sms_gateway(postgres: Postgres) -> AsyncIterator[Consumer]:
    from hibiki_sms_gateway.entrypoints.main import MIGRATIONS, build_runtime
    from hibiki_sms_gateway.settings import SmsGatewaySettings

    consumer = await wired(build_runtime, SmsGatewaySettings, MIGRATIONS, database(postgres, "sms"))
    yield consumer
    await consumer.runtime.engine.dispose()


@pytest.fixture(scope="module")
async def reporting(postgres: Postgres) -> AsyncIterator[Consumer]:
    from hibiki_reporting.entrypoints.main import MIGRATIONS, build_runtime
    from hibiki_reporting.settings import ReportingSettings

    consumer = await wired(build_runtime, ReportingSettings, MIGRATIONS, database(postgres, "reporting"))
    yield consumer
    await consumer.runtime.engine.dispose()


@pytest.fixture(scope="module")
def consumers(routing: Consumer, sms_gateway: Consumer, reporting: Consumer) -> dict[str, Consumer]:
    return {"routing": routing, "sms-gateway": sms_gateway, "reporting": reporting}


# ---- what must hold ------------------------------------------------------------------------------------

TOPICS_OF = {
    "routing": [CALL_EVENTS],
    "sms-gateway": [SMS_REQUESTS],
    "reporting": [CALL_EVENTS, CALL_ACTIONS, SMS_REQUESTS, SMS_RESULTS],
}


async def check_batch(
    consumer: Consumer, topic: str, hostile: Sequence[bytes], positions: Sequence[int]
) -> Counter[str]:
    """Feed the hostile values with two good events at `positions`; returns the dead letters' reasons."""
    goods = [good_event(topic) for _ in range(2)]
    batch = list(hostile)
    for (_, good), position in zip(goods, positions, strict=True):
        batch.insert(min(position, len(batch)), good.SerializeToString())
    outcome = await consumer.feed(topic, batch)
    good_values = {good.SerializeToString() for _, good in goods}
    assert not [d for d in outcome.dead if d.record.value in good_values], "a good event was dead-lettered"
    for key, good in goods:
        event_id = good.envelope.event_id  # type: ignore[attr-defined]
        claimed = await consumer.scalar(
            "SELECT count(*) FROM processed_events WHERE event_id = :event_id", event_id=event_id
        )
        assert claimed == 1, (consumer.name, topic, "good event not handled")
        if consumer.name == "reporting":
            table, column = (
                ("call_records", "call_id")
                if topic in (CALL_EVENTS, CALL_ACTIONS)
                else (
                    "sms_records",
                    "request_id",
                )
            )
            counted = await consumer.scalar(
                f"SELECT count(*) FROM {table} WHERE {column} = :key AND tenant_id = :tenant",
                key=key,
                tenant=GOOD_TENANT,
            )
            assert counted == 1, (topic, "the report does not count the good event exactly once")
    return Counter(d.reason for d in outcome.dead)


@pytest.mark.parametrize(("service", "topic"), [(s, t) for s, ts in TOPICS_OF.items() for t in ts])
async def test_one_hostile_field_at_a_time_costs_only_its_record(
    service: str, topic: str, consumers: dict[str, Consumer]
) -> None:
    consumer = consumers[service]
    variants = [
        variant.SerializeToString()
        for base in every_body(topic, f"h-{uuid.uuid4().hex[:12]}")
        for _, variant in one_hostile_field_each(base)
    ]
    assert len(variants) > 50
    reasons: Counter[str] = Counter()
    for start in range(0, len(variants), 150):
        chunk = variants[start : start + 150]
        reasons += await check_batch(consumer, topic, chunk, [0, len(chunk) // 2])
    assert reasons["invalid_field"] > 0, reasons  # the contract's limits do refuse most of them


def hostile_batches(topic: str) -> st.SearchStrategy[list[bytes]]:
    return st.lists(topic_records(TOPIC_MESSAGES[topic], TENANTS), min_size=1, max_size=8)


@FUZZ
@given(data=st.data())
async def test_routing_survives_generated_call_events(routing: Consumer, data: st.DataObject) -> None:
    hostile = data.draw(hostile_batches(CALL_EVENTS))
    positions = [data.draw(st.integers(0, len(hostile))) for _ in range(2)]
    await check_batch(routing, CALL_EVENTS, hostile, positions)


@FUZZ
@given(data=st.data())
async def test_sms_gateway_survives_generated_sms_requests(
    sms_gateway: Consumer, data: st.DataObject
) -> None:
    hostile = data.draw(hostile_batches(SMS_REQUESTS))
    positions = [data.draw(st.integers(0, len(hostile))) for _ in range(2)]
    await check_batch(sms_gateway, SMS_REQUESTS, hostile, positions)


@pytest.mark.parametrize("topic", [CALL_EVENTS, CALL_ACTIONS, SMS_REQUESTS, SMS_RESULTS])
@FUZZ
@given(data=st.data())
async def test_reporting_survives_generated_records_on_each_topic(
    reporting: Consumer, topic: str, data: st.DataObject
) -> None:
    hostile = data.draw(hostile_batches(topic))
    positions = [data.draw(st.integers(0, len(hostile))) for _ in range(2)]
    await check_batch(reporting, topic, hostile, positions)


# ---- the record classes that stopped consumers before -------------------------------------------------


def _call_event(call_id: str, tenant: str = GOOD_TENANT, **body: Message) -> bytes:
    ((field, value),) = body.items()
    return topic_message(CALL_EVENTS, call_id, field, value, tenant).SerializeToString()


async def test_digits_answering_a_non_ascii_step_do_not_stop_routing(routing: Consumer) -> None:
    call = f"nd-{uuid.uuid4().hex[:8]}"
    started = events.CallStarted(dialed_number="+81312345678", caller_number="+819012345678")
    superscript = events.DigitsCollected(action_id=f"{call}:²", digits="1")
    outcome = await routing.feed(
        CALL_EVENTS,
        [_call_event(call, call_started=started), _call_event(call, digits_collected=superscript)],
    )
    assert [(d.record.offset, d.reason) for d in outcome.dead] == [(1, "invalid_field")]
    assert "digits_collected.action_id" in outcome.dead[0].detail


@pytest.mark.parametrize(
    ("topic", "body_field", "body"),
    [
        (CALL_EVENTS, "call_ended", events.CallEnded(reason=999)),  # type: ignore[arg-type]
        (SMS_RESULTS, "sms_rejected", results.SmsRejected(reason=999)),  # type: ignore[arg-type]
        (SMS_RESULTS, "sms_delivered", results.SmsDelivered(carrier=999, reason="DELIVRD")),  # type: ignore[arg-type]
    ],
)
async def test_enum_numbers_a_newer_producer_sends_are_counted_as_unknown(
    reporting: Consumer, topic: str, body_field: str, body: Message
) -> None:
    key = f"enum-{uuid.uuid4().hex[:8]}"
    outcome = await reporting.feed(topic, [topic_message(topic, key, body_field, body).SerializeToString()])
    assert outcome.dead == []
    if topic == SMS_RESULTS:
        status, reason, carrier = await _sms_row(reporting, key)
        assert (reason if body_field == "sms_rejected" else carrier) == "unknown", (status, reason, carrier)
    else:
        assert await reporting.scalar("SELECT count(*) FROM call_records WHERE call_id = :k", k=key) == 1


async def _sms_row(reporting: Consumer, key: str) -> tuple[str, str, str]:
    async with reporting.runtime.sessions() as session:
        row = (
            await session.execute(
                text("SELECT status, reason, carrier FROM sms_records WHERE request_id = :k"), {"k": key}
            )
        ).one()
    return str(row.status), str(row.reason), str(row.carrier)


def _over_column(topic: str, what: str) -> bytes:
    key = f"long-{uuid.uuid4().hex[:8]}"
    (message,) = [
        m for m in every_body(topic, key) if m.WhichOneof("body") in ("call_started", "sms_requested")
    ]
    envelope = message.envelope  # type: ignore[attr-defined]
    if what == "event_id":
        envelope.event_id = "e" * 201
    elif what == "tenant_id":
        envelope.tenant_id = "t" * 101
    elif what == "dialed_number":
        message.call_started.dialed_number = "+81" + "3" * 30  # type: ignore[attr-defined]
    elif what == "box_number":
        message.sms_requested.box_number = "1" * 65  # type: ignore[attr-defined]
    elif what == "request_id":
        message.request_id = "r" * 201  # type: ignore[attr-defined]
    elif what == "call_id":
        message.call_id = "c" * 201  # type: ignore[attr-defined]
    return message.SerializeToString()


@pytest.mark.parametrize(
    ("service", "topic", "what"),
    [
        ("routing", CALL_EVENTS, "event_id"),
        ("routing", CALL_EVENTS, "tenant_id"),
        ("routing", CALL_EVENTS, "dialed_number"),
        ("routing", CALL_EVENTS, "call_id"),
        ("reporting", CALL_EVENTS, "event_id"),
        ("reporting", CALL_EVENTS, "tenant_id"),
        ("reporting", CALL_EVENTS, "dialed_number"),
        ("reporting", SMS_REQUESTS, "box_number"),
        ("reporting", SMS_REQUESTS, "request_id"),
        ("sms-gateway", SMS_REQUESTS, "event_id"),
        ("sms-gateway", SMS_REQUESTS, "tenant_id"),
        ("sms-gateway", SMS_REQUESTS, "box_number"),
        ("sms-gateway", SMS_REQUESTS, "request_id"),
    ],
)
async def test_strings_longer_than_their_column_cost_only_their_record(
    service: str, topic: str, what: str, consumers: dict[str, Consumer]
) -> None:
    consumer = consumers[service]
    reasons = await check_batch(consumer, topic, [_over_column(topic, what)], [0, 1])
    assert reasons == Counter({"invalid_field": 1})


async def test_a_handler_failing_on_a_value_postgres_refuses_isolates_that_record(routing: Consumer) -> None:
    """Were a limit missing from the contract, PostgreSQL's refusal costs the one record, not the batch."""
    real = routing.edge.translators[CALL_EVENTS]

    def leaky(event: Any) -> Any:  # an edge that forgot the call id limit
        command = real(event)
        if command.call_id.startswith("leak-"):
            return type(command)(**{**command.__dict__, "call_id": command.call_id + "x" * 300})
        return command

    leaking = Consumer(routing.name, routing.runtime, ConsumerEdge({CALL_EVENTS: leaky}), routing.handler)
    started = events.CallStarted(dialed_number="+81312345678", caller_number="+819012345678")
    batch = [
        _call_event(f"{prefix}-{uuid.uuid4().hex[:8]}", call_started=started)
        for prefix in ("ok", "leak", "ok")
    ]
    records = [FakeRecord(CALL_EVENTS, 0, offset, b"k", value) for offset, value in enumerate(batch)]

    outcome = await process_batch(records, leaking.edge, leaking.handler)

    assert [(d.record.offset, d.reason) for d in outcome.dead] == [(1, "handler_error:DBAPIError")]
    assert "value too long" in outcome.dead[0].detail
    assert outcome.handled == 2
    assert routing.name and processed_events is not None

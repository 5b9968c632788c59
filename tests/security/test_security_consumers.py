"""Hostile records at every consumer: random bytes and random protobufs, mixed with good events.

Each service is wired by its own build_runtime (SQLite, no broker); the batch handler it registers is captured
and fed the way the runtime's consumer feeds it (decode_event → Delivery → handler). A handler that raises
would make the runtime redeliver the batch forever (a poison pill), so nothing may raise: every bad record
becomes an InvalidEvent or a Rejection with a reason, and the good events of the same batch are processed.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message
from hibiki.call.v1 import call_actions_pb2, call_events_pb2
from hibiki.sms.v1 import sms_requests_pb2, sms_results_pb2
from hibiki_runtime import service as runtime_service
from hibiki_runtime.db import upgrade_to_head
from hibiki_runtime.events import (
    CALL_ACTIONS,
    CALL_EVENTS,
    SMS_REQUESTS,
    SMS_RESULTS,
    TOPIC_MESSAGES,
    InvalidEvent,
    decode_event,
    new_envelope,
)
from hibiki_runtime.kafka import BatchHandler, Delivery, Rejection
from hibiki_runtime.outbox import processed_events
from hibiki_runtime.service import ServiceRuntime
from hibiki_runtime.settings import ServiceSettings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tests.security.proto_strategies import topic_records

TENANTS = ["t-good", "t-other"]
DECODE_REASONS = {
    "malformed",
    "missing_envelope",
    "missing_event_id",
    "missing_tenant",
    "unknown_schema",
    "schema_mismatch",
    "unsupported_schema_version",
    "invalid_occurred_at",
}
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass
class Consumer:
    runtime: ServiceRuntime
    handlers: dict[str, BatchHandler]


async def wired(
    build: Callable[[Any], ServiceRuntime],
    settings_type: type[ServiceSettings],
    migrations: Path,
    folder: Path,
) -> Consumer:
    """The service as build_runtime wires it, with the batch handlers it registered, on a migrated SQLite."""
    handlers: dict[str, BatchHandler] = {}

    def capture(_broker: Any, *, topics: Sequence[str], handler: BatchHandler, **_: Any) -> None:
        handlers.update(dict.fromkeys(topics, handler))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runtime_service, "register_batch_consumer", capture)
        runtime = build(settings_type(database_url=f"sqlite+aiosqlite:///{folder / 'fuzz.db'}"))
    await upgrade_to_head(runtime.engine, migrations)
    return Consumer(runtime, handlers)


@pytest.fixture(scope="module")
async def routing(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Consumer]:
    from hibiki_routing.entrypoints.main import MIGRATIONS, build_runtime
    from hibiki_routing.settings import RoutingSettings

    consumer = await wired(build_runtime, RoutingSettings, MIGRATIONS, tmp_path_factory.mktemp("routing"))
    yield consumer
    await consumer.runtime.engine.dispose()


@pytest.fixture(scope="module")
async def sms_gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Consumer]:
    from hibiki_sms_gateway.entrypoints.main import MIGRATIONS, build_runtime
    from hibiki_sms_gateway.settings import SmsGatewaySettings

    consumer = await wired(build_runtime, SmsGatewaySettings, MIGRATIONS, tmp_path_factory.mktemp("sms"))
    yield consumer
    await consumer.runtime.engine.dispose()


@pytest.fixture(scope="module")
async def reporting(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Consumer]:
    from hibiki_reporting.entrypoints.main import MIGRATIONS, build_runtime
    from hibiki_reporting.settings import ReportingSettings

    consumer = await wired(build_runtime, ReportingSettings, MIGRATIONS, tmp_path_factory.mktemp("reporting"))
    yield consumer
    await consumer.runtime.engine.dispose()


def good_event(topic: str) -> Message:
    """A valid event of `topic` with fresh ids, which the consumer must process whatever surrounds it."""
    call_id = f"good-{uuid.uuid4().hex}"
    body: Message
    message: Message
    if topic == CALL_EVENTS:
        body = call_events_pb2.CallStarted(dialed_number="+815000000000", caller_number="+819000000001")
        message = call_events_pb2.CallEvent(call_id=call_id, call_started=body)
    elif topic == CALL_ACTIONS:
        body = call_actions_pb2.Hangup(reason="completed")
        message = call_actions_pb2.CallAction(call_id=call_id, step=1, action_id=f"{call_id}:1", hangup=body)
    elif topic == SMS_REQUESTS:
        body = sms_requests_pb2.SmsRequested(call_id=call_id, box_number="0", recipient="+819000000001")
        message = sms_requests_pb2.SmsRequest(request_id=f"{call_id}:2", sms_requested=body)
    else:
        body = sms_results_pb2.SmsRejected(reason=sms_results_pb2.REJECT_REASON_UNKNOWN_BOX)
        message = sms_results_pb2.SmsResult(request_id=f"{call_id}:2", sms_rejected=body)
    message.envelope.CopyFrom(new_envelope("t-good", body, event_id=f"{call_id}:{topic}"))
    return message


async def feed(
    consumer: Consumer, topic: str, values: Sequence[bytes]
) -> tuple[list[str], Sequence[Rejection]]:
    """One batch through decode and the handler: (decode failure reasons, the handler's rejections)."""
    deliveries, invalid = [], []
    for offset, value in enumerate(values):
        try:
            event = decode_event(topic, value)
        except InvalidEvent as error:
            assert error.detail, f"{error.reason} without detail"
            invalid.append(error.reason)
            continue
        deliveries.append(Delivery(topic, 0, offset, None, event))
    rejections = await consumer.handlers[topic](deliveries) if deliveries else ()
    return invalid, rejections


async def processed(consumer: Consumer, event_ids: Sequence[str]) -> set[str]:
    async with consumer.runtime.sessions() as session:
        rows = await session.execute(
            select(processed_events.c.event_id).where(processed_events.c.event_id.in_(event_ids))
        )
    return {row[0] for row in rows}


async def check_hostile_batch(
    consumer: Consumer, topic: str, hostile: list[bytes], data: st.DataObject
) -> None:
    goods = [good_event(topic) for _ in range(2)]
    batch = list(hostile)
    for good in goods:  # the good events land anywhere in the batch
        batch.insert(data.draw(st.integers(0, len(batch))), good.SerializeToString())
    invalid, rejections = await feed(consumer, topic, batch)
    assert set(invalid) <= DECODE_REASONS
    for rejection in rejections:
        assert rejection.reason and rejection.detail, rejection
        assert rejection.delivery.event.tenant_id in TENANTS or rejection.delivery.event.tenant_id
    good_ids = [good.envelope.event_id for good in goods]  # type: ignore[attr-defined]
    assert not [r for r in rejections if r.delivery.event.event_id in good_ids]
    assert await processed(consumer, good_ids) == set(good_ids)


def hostile_batches(topic: str) -> st.SearchStrategy[list[bytes]]:
    return st.lists(topic_records(TOPIC_MESSAGES[topic], TENANTS), min_size=1, max_size=8)


@FUZZ
@given(hostile=hostile_batches(CALL_EVENTS), data=st.data())
async def test_routing_survives_hostile_call_events(
    routing: Consumer, hostile: list[bytes], data: st.DataObject
) -> None:
    await check_hostile_batch(routing, CALL_EVENTS, hostile, data)


@FUZZ
@given(hostile=hostile_batches(SMS_REQUESTS), data=st.data())
async def test_sms_gateway_survives_hostile_sms_requests(
    sms_gateway: Consumer, hostile: list[bytes], data: st.DataObject
) -> None:
    await check_hostile_batch(sms_gateway, SMS_REQUESTS, hostile, data)


@pytest.mark.parametrize("topic", [CALL_EVENTS, CALL_ACTIONS, SMS_REQUESTS, SMS_RESULTS])
@FUZZ
@given(data=st.data())
async def test_reporting_survives_hostile_records_on_each_topic(
    reporting: Consumer, topic: str, data: st.DataObject
) -> None:
    await check_hostile_batch(reporting, topic, data.draw(hostile_batches(topic)), data)


@pytest.mark.parametrize(("seconds", "nanos"), [(0, -1), (-(2**62), 0), (253402300000, 0), (-86400, 0)])
def test_events_with_unusable_occurred_at_are_invalid_not_a_crash(seconds: int, nanos: int) -> None:
    event = good_event(CALL_EVENTS)
    event.envelope.occurred_at.seconds, event.envelope.occurred_at.nanos = seconds, nanos  # type: ignore[attr-defined]
    with pytest.raises(InvalidEvent) as invalid:
        decode_event(CALL_EVENTS, event.SerializeToString())
    assert invalid.value.reason == "invalid_occurred_at"

"""A migrated SQLite database and call.events items for service-layer tests (no broker)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from google.protobuf.message import Message
from hibiki.call.v1 import call_actions_pb2, call_events_pb2
from hibiki.sms.v1 import sms_requests_pb2
from hibiki_routing.domain.commands import RoutingCommand
from hibiki_routing.entrypoints.call_events_consumer import EDGE
from hibiki_routing.entrypoints.main import MIGRATIONS
from hibiki_runtime.consumer import Inbound
from hibiki_runtime.db import create_engine, session_factory, upgrade_to_head
from hibiki_runtime.events import CALL_ACTIONS, CALL_EVENTS, SMS_REQUESTS, new_envelope
from hibiki_runtime.outbox import outbox
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

# A Tuesday, 10:00 in Tokyo.
WORKDAY_MORNING = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


async def migrated_database(directory: Path) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    engine = create_engine(f"sqlite+aiosqlite:///{directory / 'routing.db'}")
    await upgrade_to_head(engine, MIGRATIONS)
    return engine, session_factory(engine)


def call_event(tenant: str, call_id: str, event_id: str, **body: Message) -> call_events_pb2.CallEvent:
    """A CallEvent with one body field, e.g. call_event(..., digits_collected=DigitsCollected(...))."""
    ((name, value),) = body.items()
    message = call_events_pb2.CallEvent(call_id=call_id, **{name: value})
    message.envelope.CopyFrom(new_envelope(tenant, value, event_id=event_id, occurred_at=WORKDAY_MORNING))
    return message


def deliveries(*messages: call_events_pb2.CallEvent) -> list[Inbound[RoutingCommand]]:
    """The messages as routing's consumer edge hands them to the handler (one batch, in order)."""
    return [
        EDGE.inbound(CALL_EVENTS, m, key=m.call_id, position=position) for position, m in enumerate(messages)
    ]


async def queued(
    sessions: async_sessionmaker[AsyncSession],
) -> tuple[list[call_actions_pb2.CallAction], list[sms_requests_pb2.SmsRequest]]:
    """The call actions and SMS requests waiting in the outbox, in order."""
    async with sessions() as session:
        rows = (await session.execute(select(outbox).order_by(outbox.c.id))).all()
    actions = [call_actions_pb2.CallAction.FromString(r.value) for r in rows if r.topic == CALL_ACTIONS]
    requests = [sms_requests_pb2.SmsRequest.FromString(r.value) for r in rows if r.topic == SMS_REQUESTS]
    return actions, requests


def bodies(actions: Sequence[call_actions_pb2.CallAction]) -> list[str]:
    return [a.WhichOneof("body") or "" for a in actions]

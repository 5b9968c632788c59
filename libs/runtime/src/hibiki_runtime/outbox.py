"""Effectively-once effects: processed-event ids and a transactional outbox relayed to Kafka.

A consumer records the event id it handles and the messages it wants to send in the same database
transaction as its state change; the relay publishes committed outbox rows and deletes them only
after the broker acknowledged them. A crash anywhere repeats work at most; consumers deduplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf.message import Message
from hibiki.common.v1.envelope_pb2 import Envelope
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    func,
    literal,
    select,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from hibiki_runtime import contract
from hibiki_runtime.db import among, as_utc, dialect_insert
from hibiki_runtime.events import record_headers
from hibiki_runtime.metrics import RuntimeMetrics

log = logging.getLogger("hibiki.outbox")
Item = TypeVar("Item")

reliability_metadata = MetaData()


def _outbox_columns() -> list[Column[Any]]:
    return [
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("topic", String(249), nullable=False),
        Column("key", LargeBinary, nullable=True),
        Column("value", LargeBinary, nullable=False),
        Column("headers", JSON, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    ]


def _processed_events_columns() -> list[Column[Any]]:
    return [
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(200), primary_key=True, info=contract.stores(Envelope, "event_id")),
        Column("processed_at", DateTime(timezone=True), nullable=False, index=True),
    ]


outbox = Table("outbox", reliability_metadata, *_outbox_columns())
processed_events = Table("processed_events", reliability_metadata, *_processed_events_columns())


def create_reliability_tables(op: Any) -> None:
    """Create the outbox and processed-events tables from a service's first Alembic migration."""
    op.create_table("outbox", *_outbox_columns())
    op.create_table("processed_events", *_processed_events_columns())


async def claim_events(session: AsyncSession, consumer: str, event_ids: Iterable[str]) -> set[str]:
    """Record every id of a consumed batch in one statement; returns the ids not handled before.

    An id repeated within `event_ids` is claimed once: the caller handles its first occurrence only.
    """
    unique = list(dict.fromkeys(event_ids))
    if not unique:
        return set()
    now = datetime.now(UTC)
    insert = dialect_insert(session, processed_events)
    if session.get_bind().dialect.name == "postgresql":
        # One array parameter keeps the statement text the same for every batch size, so it is compiled
        # and prepared once instead of once per size (a multi-row VALUES of 500 rows costs ~10x more).
        rows = select(
            literal(consumer, String),
            func.unnest(literal(unique, postgresql.ARRAY(String))),
            literal(now, DateTime(timezone=True)),
        )
        insert = insert.from_select(["consumer", "event_id", "processed_at"], rows)
    else:
        insert = insert.values(
            [{"consumer": consumer, "event_id": event_id, "processed_at": now} for event_id in unique]
        )
    statement = insert.on_conflict_do_nothing(index_elements=["consumer", "event_id"]).returning(
        processed_events.c.event_id
    )
    return set((await session.scalars(statement)).all())


def first_claimed(
    items: Iterable[Item], claimed: Collection[str], event_id: Callable[[Item], str]
) -> list[Item]:
    """The items whose event id `claim_events` returned, in order, each id once: a repeat within the batch
    is a redelivery of the same event."""
    seen: set[str] = set()
    first: list[Item] = []
    for item in items:
        key = event_id(item)
        if key in claimed and key not in seen:
            seen.add(key)
            first.append(item)
    return first


async def release_claims(session: AsyncSession, consumer: str, event_ids: Collection[str]) -> None:
    """Undo claims of rejected events, so that a redelivery is rejected (and dead-lettered) again."""
    if event_ids:
        await session.execute(
            delete(processed_events).where(
                processed_events.c.consumer == consumer,
                among(session, processed_events.c.event_id, event_ids),
            )
        )


class ContractViolation(ValueError):
    """A message this service was about to send breaks the contract's field rules (a bug, or input that
    should have been refused earlier); nothing is sent."""


async def enqueue_all(session: AsyncSession, messages: Sequence[tuple[str, str, Message]]) -> None:
    """Add (topic, key, message) triples to the outbox within the session's transaction.

    Every message is checked against the contract first: a consumer downstream would dead-letter it.
    """
    if not messages:
        return
    for topic, _key, message in messages:
        if broken := contract.violations(message):
            detail = "; ".join(f"{v.field}: {v.description}" for v in broken)
            raise ContractViolation(f"{message.DESCRIPTOR.full_name} for {topic}: {detail}")
    now = datetime.now(UTC)
    await session.execute(
        outbox.insert(),
        [
            {
                "topic": topic,
                "key": key.encode(),
                "value": message.SerializeToString(),
                "headers": {name: value.decode() for name, value in record_headers(message)},
                "created_at": now,
            }
            for topic, key, message in messages
        ],
    )


@dataclass(frozen=True)
class OutboundRecord:
    topic: str
    key: bytes | None
    value: bytes
    headers: dict[str, str]


SendBatch = Callable[[Sequence[OutboundRecord]], Awaitable[None]]

# Only one relay per database publishes at a time, so records of one key keep their order.
_RELAY_LOCK_ID = 0x48494249


class OutboxRelay:
    """Publishes committed outbox rows in id order and deletes them once the broker has them."""

    def __init__(
        self,
        engine: AsyncEngine,
        send_batch: SendBatch,
        metrics: RuntimeMetrics,
        *,
        batch_size: int = 500,
        idle_seconds: float = 0.5,
    ) -> None:
        self._engine = engine
        self._send_batch = send_batch
        self._metrics = metrics
        self._batch_size = batch_size
        self._idle_seconds = idle_seconds
        self._wake = asyncio.Event()
        self._stopping = False
        # created_at of the oldest row seen waiting, None once the outbox was seen empty. The age is computed
        # at scrape time, so it keeps growing while the relay fails or hangs (when it matters most).
        self._oldest_pending: datetime | None = None
        metrics.outbox_oldest_pending_age.set_function(self._oldest_pending_age_seconds)

    def _oldest_pending_age_seconds(self) -> float:
        if self._oldest_pending is None:
            return 0.0
        return max(0.0, (datetime.now(UTC) - self._oldest_pending).total_seconds())

    def _saw_oldest_pending(self, created_at: datetime | None) -> None:
        self._oldest_pending = as_utc(created_at)

    def notify(self) -> None:
        """Tell the relay that new rows were committed (saves waiting for the next poll)."""
        self._wake.set()

    async def relay_once(self) -> int:
        """Publish one batch of pending rows; returns how many were published."""
        try:
            return await self._relay_batch()
        except Exception:
            self._metrics.outbox_relay_errors.inc()
            raise

    async def _relay_batch(self) -> int:
        async with self._engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                locked = await connection.scalar(
                    text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": _RELAY_LOCK_ID}
                )
                if not locked:
                    self._saw_oldest_pending(None)  # the lock holder reports the age
                    return 0
            rows = (
                await connection.execute(select(outbox).order_by(outbox.c.id).limit(self._batch_size))
            ).all()
            if not rows:
                self._metrics.outbox_backlog.set(0)
                self._saw_oldest_pending(None)
                return 0
            self._saw_oldest_pending(rows[0].created_at)
            await self._send_batch(
                [OutboundRecord(row.topic, row.key, row.value, dict(row.headers)) for row in rows]
            )
            await connection.execute(
                delete(outbox).where(among(connection, outbox.c.id, [row.id for row in rows]))
            )
            for topic, count in Counter(row.topic for row in rows).items():
                self._metrics.outbox_published.labels(topic).inc(count)
            if len(rows) == self._batch_size:
                backlog = await connection.scalar(select(func.count()).select_from(outbox))
                self._metrics.outbox_backlog.set(backlog or 0)
            else:
                self._metrics.outbox_backlog.set(0)
                self._saw_oldest_pending(None)
            return len(rows)

    async def run(self) -> None:
        """Relay until stop() is called; errors are logged and retried with a pause."""
        while not self._stopping:
            # Cleared before reading, so a commit notified during this pass wakes the next one at once, and
            # a pass that found less than a full batch waits instead of reading an empty outbox again.
            self._wake.clear()
            try:
                published = await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay failed; retrying")
                await asyncio.sleep(1.0)
                continue
            if published < self._batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._idle_seconds)

    async def drain(self) -> None:
        """Publish everything already committed (used during graceful shutdown)."""
        while await self.relay_once():
            pass

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

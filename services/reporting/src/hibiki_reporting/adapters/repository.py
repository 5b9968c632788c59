"""The write side: facts in, records folded from them out, and batched retention deletes.

Every write method takes a whole consumed batch and costs a fixed number of statements, however many
records the batch touches: one statement per record kept the consumers waiting on round trips.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from hibiki_runtime.consumer import Inbound
from hibiki_runtime.db import AsyncSession, among, dialect_insert
from sqlalchemy import Table, bindparam, delete, select, update

from hibiki_reporting.adapters.events import call_fact, sms_fact, stored_message
from hibiki_reporting.adapters.rows import call_row, sms_row
from hibiki_reporting.adapters.tables import call_facts, call_records, route_funnel, sms_facts, sms_records
from hibiki_reporting.domain.calendar import report_date
from hibiki_reporting.domain.calls import CallOutcome, CallRecord
from hibiki_reporting.domain.facts import CallFact, SmsFact, SmsStatus
from hibiki_reporting.domain.sms import SmsRecord


@dataclass(frozen=True)
class Sighting:
    """The first event of a batch that mentions a record: it decides the owner of a record that is new."""

    key: str
    tenant_id: str
    at: datetime


@dataclass(frozen=True)
class NewFact:
    """A consumed event as a fact of one record (an SMS request is a fact of its call and of its SMS)."""

    key: str
    item: Inbound[Any]


@dataclass(frozen=True)
class Locked:
    """Records locked until commit: the tenant that owns each, and those this transaction created."""

    owners: dict[str, str]
    created: frozenset[str]


class ReportRepository:
    """What consumers and the retention job write, in the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_calls(self, sightings: Sequence[Sighting]) -> Locked:
        """Create the records of new calls and lock every sighted call until commit.

        The lock makes concurrent consumers of different topics fold the same call one after the other,
        so that each fold sees every fact committed before it.
        """
        return await self._lock(
            call_records,
            "call_id",
            [
                {
                    "call_id": seen.key,
                    "tenant_id": seen.tenant_id,
                    "report_date": report_date(seen.at),
                    "dialed_number": "",
                    "caller_number": "",
                    "first_seen": seen.at,
                    "outcome": CallOutcome.IN_PROGRESS.value,
                    "path": [],
                }
                for seen in sightings
            ],
        )

    async def lock_sms(self, sightings: Sequence[Sighting]) -> Locked:
        """Like lock_calls, for SMS records (lock them after the calls: one lock order for every batch)."""
        return await self._lock(
            sms_records,
            "request_id",
            [
                {
                    "request_id": seen.key,
                    "tenant_id": seen.tenant_id,
                    "report_date": report_date(seen.at),
                    "call_id": "",
                    "dialed_number": "",
                    "recipient": "",
                    "box_number": "",
                    "route_id": "",
                    "first_seen": seen.at,
                    "status": SmsStatus.REQUESTED.value,
                    "reason": "",
                    "status_time": seen.at,
                    "carrier": "",
                    "timeline": [],
                }
                for seen in sightings
            ],
        )

    async def _lock(self, table: Table, key: str, placeholders: list[dict[str, Any]]) -> Locked:
        if not placeholders:
            return Locked({}, frozenset())
        # Rows are created and locked in key order: two batches inserting or locking the same records
        # wait for each other instead of deadlocking.
        placeholders.sort(key=lambda row: str(row[key]))
        created = await self._insert_many(
            dialect_insert(self.session, table).on_conflict_do_nothing(), placeholders
        )
        owners = await self.session.execute(
            select(table.c[key], table.c.tenant_id)
            .where(among(self.session, table.c[key], [row[key] for row in placeholders]))
            .order_by(table.c[key])
            .with_for_update()
        )
        return Locked({str(k): str(tenant_id) for k, tenant_id in owners}, frozenset(created))

    async def add_call_facts(self, facts: Sequence[NewFact]) -> None:
        await self._add_facts(call_facts, "call_id", facts)

    async def add_sms_facts(self, facts: Sequence[NewFact]) -> None:
        await self._add_facts(sms_facts, "request_id", facts)

    async def _add_facts(self, table: Table, key: str, facts: Sequence[NewFact]) -> None:
        rows = [
            {
                key: fact.key,
                "event_id": fact.item.event_id,
                "tenant_id": fact.item.tenant_id,
                "topic": fact.item.topic,
                "occurred_at": fact.item.occurred_at,
                "payload": fact.item.payload,
            }
            for fact in facts
        ]
        await self._insert_many(dialect_insert(self.session, table).on_conflict_do_nothing(), rows)

    async def call_facts_of(self, call_ids: Collection[str]) -> dict[str, list[CallFact]]:
        """The stored facts of each call that has any (PromptFinished tells nothing, so it is left out)."""
        facts: dict[str, list[CallFact]] = defaultdict(list)
        for call_id, topic, payload in await self._facts_rows(call_facts, "call_id", call_ids):
            fact = call_fact(topic, stored_message(topic, payload))
            if fact is not None:
                facts[call_id].append(fact)
        return dict(facts)

    async def sms_facts_of(self, request_ids: Collection[str]) -> dict[str, list[SmsFact]]:
        """The stored facts of each SMS that has any."""
        facts: dict[str, list[SmsFact]] = defaultdict(list)
        for request_id, topic, payload in await self._facts_rows(sms_facts, "request_id", request_ids):
            facts[request_id].append(sms_fact(topic, stored_message(topic, payload)))
        return dict(facts)

    async def _facts_rows(self, table: Table, key: str, keys: Collection[str]) -> Iterable[Any]:
        if not keys:
            return []
        return await self.session.execute(
            select(table.c[key], table.c.topic, table.c.payload).where(
                among(self.session, table.c[key], keys)
            )
        )

    async def save_calls(self, records: Sequence[tuple[str, CallRecord]]) -> None:
        """Write back folded (tenant, call record) pairs and replace their route funnel rows."""
        if not records:
            return
        await self._update_many(
            call_records,
            "call_id",
            [(record.call_id, call_row(tenant, record)) for tenant, record in records],
        )
        await self.session.execute(
            delete(route_funnel).where(
                among(self.session, route_funnel.c.call_id, [r.call_id for _, r in records])
            )
        )
        funnel = [
            {
                "call_id": record.call_id,
                "route_id": entry.route_id,
                "tenant_id": tenant,
                "report_date": record.report_date,
                "dialed_number": record.dialed_number,
                "route_name": entry.route_name,
                "invalid_inputs": entry.invalid_inputs,
                "timeouts": entry.timeouts,
                "abandoned": entry.abandoned_here,
                "flow_id": record.flow_id,
            }
            for tenant, record in records
            for entry in record.funnel_entries()
        ]
        await self._insert_many(route_funnel.insert(), funnel)

    async def save_sms(self, records: Sequence[tuple[str, SmsRecord]]) -> None:
        """Write back folded (tenant, SMS record) pairs."""
        await self._update_many(
            sms_records,
            "request_id",
            [(record.request_id, sms_row(tenant, record)) for tenant, record in records],
        )

    async def _insert_many(self, insert: Any, rows: list[dict[str, Any]]) -> list[str]:
        """Insert the rows; returns the first primary-key column of those inserted (not skipped)."""
        if not rows:
            return []
        # With RETURNING, SQLAlchemy sends the rows as multi-row VALUES pages ("insertmanyvalues") of a
        # statement compiled once; without it, asyncpg would execute the statement once per row.
        primary_key = next(iter(insert.table.primary_key))
        return list((await self.session.scalars(insert.returning(primary_key), rows)).all())

    async def _update_many(self, table: Table, key: str, rows: list[tuple[str, dict[str, Any]]]) -> None:
        if rows:
            await self.session.execute(
                update(table).where(table.c[key] == bindparam("record_key")),
                [{"record_key": record_key, **values} for record_key, values in rows],
            )

    async def delete_batch_before(self, kind: str, cutoff: date, batch: int) -> dict[str, int]:
        """Delete up to `batch` records of `kind` ("call" or "sms") older than cutoff, with their facts."""
        records, facts, key = (
            (call_records, call_facts, "call_id")
            if kind == "call"
            else (sms_records, sms_facts, "request_id")
        )
        ids = (
            await self.session.scalars(
                select(records.c[key]).where(records.c.report_date < cutoff).limit(batch)
            )
        ).all()
        if not ids:
            return {}
        deleted = {}
        dependents = [facts, route_funnel] if kind == "call" else [facts]
        for table in [*dependents, records]:
            result: Any = await self.session.execute(delete(table).where(table.c[key].in_(ids)))
            deleted[table.name] = int(result.rowcount or 0)
        return deleted

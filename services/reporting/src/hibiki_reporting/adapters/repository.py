"""The write side: facts in, records folded from them out, and batched retention deletes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from hibiki_runtime.db import AsyncSession, dialect_insert
from hibiki_runtime.events import decode_event
from hibiki_runtime.kafka import Delivery
from sqlalchemy import Table, delete, select, update

from hibiki_reporting.adapters.events import call_fact, sms_fact
from hibiki_reporting.adapters.rows import call_row, sms_row
from hibiki_reporting.adapters.tables import call_facts, call_records, route_funnel, sms_facts, sms_records
from hibiki_reporting.domain.calendar import report_date
from hibiki_reporting.domain.calls import CallOutcome, CallRecord
from hibiki_reporting.domain.facts import CallFact, SmsFact, SmsStatus
from hibiki_reporting.domain.sms import SmsRecord


class ReportRepository:
    """What consumers and the retention job write, in the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_call(self, call_id: str, tenant_id: str, seen_at: datetime) -> str:
        """Create the call's record if new, lock it until commit, and return the tenant that owns it.

        The lock makes concurrent consumers of different topics fold the same call one after the other,
        so that each fold sees every fact committed before it.
        """
        await self.session.execute(
            dialect_insert(self.session, call_records)
            .values(
                call_id=call_id,
                tenant_id=tenant_id,
                report_date=report_date(seen_at),
                dialed_number="",
                caller_number="",
                first_seen=seen_at,
                outcome=CallOutcome.IN_PROGRESS.value,
                path=[],
            )
            .on_conflict_do_nothing(index_elements=["call_id"])
        )
        owner = await self.session.scalar(
            select(call_records.c.tenant_id).where(call_records.c.call_id == call_id).with_for_update()
        )
        return str(owner)

    async def lock_sms(self, request_id: str, tenant_id: str, seen_at: datetime) -> str:
        """Like lock_call, for an SMS record."""
        await self.session.execute(
            dialect_insert(self.session, sms_records)
            .values(
                request_id=request_id,
                tenant_id=tenant_id,
                report_date=report_date(seen_at),
                call_id="",
                dialed_number="",
                recipient="",
                box_number="",
                route_id="",
                first_seen=seen_at,
                status=SmsStatus.REQUESTED.value,
                reason="",
                status_time=seen_at,
                carrier="",
                timeline=[],
            )
            .on_conflict_do_nothing(index_elements=["request_id"])
        )
        owner = await self.session.scalar(
            select(sms_records.c.tenant_id).where(sms_records.c.request_id == request_id).with_for_update()
        )
        return str(owner)

    async def add_call_fact(self, call_id: str, delivery: Delivery, at: datetime) -> None:
        await self._add_fact(call_facts, "call_id", call_id, delivery, at)

    async def add_sms_fact(self, request_id: str, delivery: Delivery, at: datetime) -> None:
        await self._add_fact(sms_facts, "request_id", request_id, delivery, at)

    async def _add_fact(
        self, table: Table, key_column: str, key: str, delivery: Delivery, at: datetime
    ) -> None:
        await self.session.execute(
            dialect_insert(self.session, table)
            .values(
                {
                    key_column: key,
                    "event_id": delivery.event.event_id,
                    "tenant_id": delivery.event.tenant_id,
                    "topic": delivery.topic,
                    "occurred_at": at,
                    "payload": delivery.event.message.SerializeToString(),
                }
            )
            .on_conflict_do_nothing()
        )

    async def call_facts(self, call_id: str) -> list[CallFact]:
        rows = await self.session.execute(
            select(call_facts.c.topic, call_facts.c.payload).where(call_facts.c.call_id == call_id)
        )
        facts = (call_fact(row.topic, decode_event(row.topic, row.payload).message) for row in rows)
        return [fact for fact in facts if fact is not None]

    async def sms_facts(self, request_id: str) -> list[SmsFact]:
        rows = await self.session.execute(
            select(sms_facts.c.topic, sms_facts.c.payload).where(sms_facts.c.request_id == request_id)
        )
        return [sms_fact(row.topic, decode_event(row.topic, row.payload).message) for row in rows]

    async def save_call(self, tenant_id: str, record: CallRecord) -> None:
        await self.session.execute(
            update(call_records)
            .where(call_records.c.call_id == record.call_id)
            .values(call_row(tenant_id, record))
        )
        await self.session.execute(delete(route_funnel).where(route_funnel.c.call_id == record.call_id))
        entries = record.funnel_entries()
        if entries:
            await self.session.execute(
                route_funnel.insert(),
                [
                    {
                        "call_id": record.call_id,
                        "route_id": entry.route_id,
                        "tenant_id": tenant_id,
                        "report_date": record.report_date,
                        "dialed_number": record.dialed_number,
                        "route_name": entry.route_name,
                        "invalid_inputs": entry.invalid_inputs,
                        "timeouts": entry.timeouts,
                        "abandoned": entry.abandoned_here,
                    }
                    for entry in entries
                ],
            )

    async def save_sms(self, tenant_id: str, record: SmsRecord) -> None:
        await self.session.execute(
            update(sms_records)
            .where(sms_records.c.request_id == record.request_id)
            .values(sms_row(tenant_id, record))
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

"""The SQL of retention: batched hard deletes of final messages (with their parts and short links) and of
delivery receipts, each batch in the caller's transaction (SQLite and PostgreSQL).

Rows are picked with FOR UPDATE SKIP LOCKED (nothing on SQLite, where a write transaction is exclusive), so
two replicas running retention at the same time delete disjoint batches instead of waiting on each other.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hibiki_runtime.db import among
from sqlalchemy import ColumnClause, any_, delete, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from hibiki_sms_gateway.adapters.tables import sms_message_parts, sms_messages, sms_receipts, sms_short_links
from hibiki_sms_gateway.domain.lifecycle import MessageState

# Every table retention deletes from, as the `table` label of its metric.
RETENTION_TABLES = (sms_messages.name, sms_message_parts.name, sms_short_links.name, sms_receipts.name)


class RetentionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def delete_messages_before(
        self, state: MessageState, before: datetime, batch: int
    ) -> dict[str, int]:
        """Delete up to `batch` messages in `state` last changed before `before`, with their short links and
        parts; returns the rows deleted per table (nothing when none was found)."""
        ids = (
            await self._session.scalars(
                # (state, updated_at) is the index ix_sms_messages_state: one range of it per state.
                select(sms_messages.c.request_id)
                .where(sms_messages.c.state == state.value, sms_messages.c.updated_at < before)
                .limit(batch)
                .with_for_update(skip_locked=True)
            )
        ).all()
        if not ids:
            return {}
        deleted = {}
        # The children first (both also cascade), so that each table's count is its own.
        for table in (sms_short_links, sms_message_parts, sms_messages):
            result: Any = await self._session.execute(
                delete(table).where(among(self._session, table.c.request_id, ids))
            )
            deleted[table.name] = int(result.rowcount or 0)
        return deleted

    async def delete_receipts_before(self, before: datetime, batch: int) -> int:
        """Delete up to `batch` delivery receipts received before `before`; returns how many.

        Picked by `received_at` alone and deleted by physical row id (SQLite's rowid, PostgreSQL's ctid), so
        this does not depend on the table's key.
        """
        postgres = self._session.get_bind().dialect.name == "postgresql"
        row: ColumnClause[Any] = literal_column("ctid" if postgres else "rowid")
        picked = (
            select(row)
            .select_from(sms_receipts)
            .where(sms_receipts.c.received_at < before)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
        # ctid = ANY(ARRAY(SELECT …)) is a TID scan; `ctid IN (SELECT …)` would scan the whole table.
        which = row == any_(func.array(picked.scalar_subquery())) if postgres else row.in_(picked)
        result: Any = await self._session.execute(delete(sms_receipts).where(which))
        return int(result.rowcount or 0)

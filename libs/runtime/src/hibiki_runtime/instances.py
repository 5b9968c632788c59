"""Live processes of a service: each registers, heartbeats and leaves; the others see who stopped.

A service whose processes own work that redelivery cannot redo (an SMS being put on the wire, a phone call
in progress) keeps a table of its processes (`instances_table`, in its own migrations) and runs one
`Instance` per process: registered at start, a heartbeat every few seconds (ServiceRuntime.every), gone at a
graceful stop. The work of a process that stopped heartbeating is then taken over or reported by another.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Column, DateTime, MetaData, String, Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hibiki_runtime.db import dialect_insert


def instances_table(metadata: MetaData, name: str) -> Table:
    """The table of a service's live processes (its migration creates the same columns)."""
    return Table(
        name,
        metadata,
        Column("instance_id", String(64), primary_key=True),
        Column("started_at", DateTime(timezone=True), nullable=False),
        Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    )


class InstanceRepository:
    def __init__(self, session: AsyncSession, table: Table) -> None:
        self._session = session
        self._table = table

    async def register(self, instance_id: str, now: datetime) -> None:
        await self._session.execute(
            dialect_insert(self._session, self._table)
            .values(instance_id=instance_id, started_at=now, heartbeat_at=now)
            .on_conflict_do_nothing(index_elements=["instance_id"])
        )

    async def heartbeat(self, instance_id: str, now: datetime) -> bool:
        """Mark the instance alive; False when its row was gone (it was taken for dead and must register)."""
        table = self._table
        result = await self._session.execute(
            update(table).where(table.c.instance_id == instance_id).values(heartbeat_at=now)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def leave(self, instance_id: str) -> None:
        await self._session.execute(delete(self._table).where(self._table.c.instance_id == instance_id))

    async def live(self, heartbeat_since: datetime) -> set[str]:
        """Instances that heartbeat since `heartbeat_since`."""
        table = self._table
        rows = await self._session.scalars(
            select(table.c.instance_id).where(table.c.heartbeat_at >= heartbeat_since)
        )
        return set(rows.all())

    async def forget_dead(self, heartbeat_before: datetime) -> None:
        await self._session.execute(delete(self._table).where(self._table.c.heartbeat_at < heartbeat_before))


class Instance:
    """This process among its service's processes."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        table: Table,
        *,
        instance_id: str = "",
        forget_after: timedelta = timedelta(days=1),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.instance_id = instance_id or uuid.uuid4().hex
        self._sessions = sessions
        self._table = table
        self._forget_after = forget_after
        self._clock = clock

    async def register(self) -> None:
        async with self._sessions.begin() as session:
            instances = InstanceRepository(session, self._table)
            await instances.forget_dead(self._clock() - self._forget_after)
            await instances.register(self.instance_id, self._clock())

    async def heartbeat(self) -> None:
        """Say this process is alive (run every heartbeat interval); registers again if it was forgotten."""
        async with self._sessions.begin() as session:
            instances = InstanceRepository(session, self._table)
            if not await instances.heartbeat(self.instance_id, self._clock()):
                await instances.register(self.instance_id, self._clock())

    async def leave(self) -> None:
        """Gone: the others take over (or report) what this one leaves, at once."""
        async with self._sessions.begin() as session:
            await InstanceRepository(session, self._table).leave(self.instance_id)

    async def live(self, silent_for: timedelta) -> set[str]:
        """The instances (this one included) that heartbeat within the last `silent_for`."""
        async with self._sessions() as session:
            return await InstanceRepository(session, self._table).live(self._clock() - silent_for)

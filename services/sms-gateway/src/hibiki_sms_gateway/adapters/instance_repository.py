"""Live sms-gateway processes: each registers, heartbeats, and leaves; the others see who stopped."""

from __future__ import annotations

from datetime import datetime

from hibiki_runtime.db import dialect_insert
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hibiki_sms_gateway.adapters.tables import sms_instances


class InstanceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def register(self, instance_id: str, now: datetime) -> None:
        await self._session.execute(
            dialect_insert(self._session, sms_instances)
            .values(instance_id=instance_id, started_at=now, heartbeat_at=now)
            .on_conflict_do_nothing(index_elements=["instance_id"])
        )

    async def heartbeat(self, instance_id: str, now: datetime) -> bool:
        """Mark the instance alive; False when its row was gone (it was taken for dead and must register)."""
        result = await self._session.execute(
            update(sms_instances).where(sms_instances.c.instance_id == instance_id).values(heartbeat_at=now)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def leave(self, instance_id: str) -> None:
        await self._session.execute(delete(sms_instances).where(sms_instances.c.instance_id == instance_id))

    async def live(self, heartbeat_since: datetime) -> set[str]:
        """Instances that heartbeat since `heartbeat_since`."""
        rows = await self._session.scalars(
            select(sms_instances.c.instance_id).where(sms_instances.c.heartbeat_at >= heartbeat_since)
        )
        return set(rows.all())

    async def forget_dead(self, heartbeat_before: datetime) -> None:
        await self._session.execute(
            delete(sms_instances).where(sms_instances.c.heartbeat_at < heartbeat_before)
        )

"""This process among the sms-gateway processes: registered while it runs, heartbeating, gone at stop."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hibiki_sms_gateway.adapters.instance_repository import InstanceRepository


class Instance:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        forget_after: timedelta = timedelta(days=1),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.instance_id = uuid.uuid4().hex
        self._sessions = sessions
        self._forget_after = forget_after
        self._clock = clock

    async def register(self) -> None:
        async with self._sessions.begin() as session:
            instances = InstanceRepository(session)
            await instances.forget_dead(self._clock() - self._forget_after)
            await instances.register(self.instance_id, self._clock())

    async def heartbeat(self) -> None:
        """Say this process is alive (run every heartbeat interval); registers again if it was forgotten."""
        async with self._sessions.begin() as session:
            instances = InstanceRepository(session)
            if not await instances.heartbeat(self.instance_id, self._clock()):
                await instances.register(self.instance_id, self._clock())

    async def leave(self) -> None:
        """Gone: another process takes over what this one leaves queued, at once."""
        async with self._sessions.begin() as session:
            await InstanceRepository(session).leave(self.instance_id)

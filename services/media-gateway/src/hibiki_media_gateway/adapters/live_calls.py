"""The calls in progress, by process: written with their CallStarted, deleted with their CallEnded."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from hibiki_runtime.db import among, as_utc
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from hibiki_media_gateway.adapters.tables import media_calls


@dataclass(frozen=True)
class LiveCallRow:
    call_id: str
    instance_id: str
    tenant_id: str
    dialed_number: str
    started_at: datetime


class LiveCallRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_all(self, rows: Sequence[LiveCallRow]) -> None:
        if rows:
            await self._session.execute(
                insert(media_calls),
                [
                    {
                        "call_id": row.call_id,
                        "instance_id": row.instance_id,
                        "tenant_id": row.tenant_id,
                        "dialed_number": row.dialed_number,
                        "started_at": row.started_at,
                    }
                    for row in rows
                ],
            )

    async def remove_all(self, call_ids: Collection[str]) -> None:
        if call_ids:
            await self._session.execute(
                delete(media_calls).where(among(self._session, media_calls.c.call_id, call_ids))
            )

    async def of_other_instances(self, live: Collection[str], limit: int = 500) -> list[LiveCallRow]:
        """Calls of processes that are not in `live` (they stopped without ending them), locked for this
        transaction; another process sweeping at the same time skips them."""
        statement = (
            select(media_calls).where(media_calls.c.instance_id.not_in(list(live) or [""])).limit(limit)
        )
        if self._session.get_bind().dialect.name == "postgresql":
            statement = statement.with_for_update(skip_locked=True)
        rows = await self._session.execute(statement)
        return [
            LiveCallRow(
                row.call_id, row.instance_id, row.tenant_id, row.dialed_number, as_utc(row.started_at)
            )
            for row in rows
        ]

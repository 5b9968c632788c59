"""A tenant's blocked caller numbers in SQL; every query is scoped by tenant."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hibiki_routing.adapters.tables import blocked_numbers


class AlreadyBlocked(Exception):
    """The number is on the tenant's blocklist already."""


@dataclass(frozen=True)
class BlockedNumber:
    number: str
    note: str = ""
    create_time: datetime | None = None


class BlocklistRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, tenant_id: str, blocked: BlockedNumber) -> BlockedNumber:
        stored = BlockedNumber(blocked.number, blocked.note, datetime.now(UTC))
        try:
            async with self._session.begin_nested():
                await self._session.execute(
                    blocked_numbers.insert().values(
                        tenant_id=tenant_id,
                        number=stored.number,
                        note=stored.note,
                        create_time=stored.create_time,
                    )
                )
        except IntegrityError as error:
            raise AlreadyBlocked(stored.number) from error
        return stored

    async def remove(self, tenant_id: str, number: str) -> bool:
        """True when the number was on the list."""
        result = await self._session.execute(
            delete(blocked_numbers).where(
                blocked_numbers.c.tenant_id == tenant_id, blocked_numbers.c.number == number
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def contains(self, tenant_id: str, number: str) -> bool:
        found = await self._session.execute(
            select(blocked_numbers.c.number).where(
                blocked_numbers.c.tenant_id == tenant_id, blocked_numbers.c.number == number
            )
        )
        return found.first() is not None

    async def blocked_among(self, callers: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
        """The (tenant, number) pairs of `callers` that are on their tenant's blocklist, in one query."""
        if not callers:
            return set()
        rows = await self._session.execute(
            select(blocked_numbers.c.tenant_id, blocked_numbers.c.number).where(
                tuple_(blocked_numbers.c.tenant_id, blocked_numbers.c.number).in_(list(callers))
            )
        )
        return {(row.tenant_id, row.number) for row in rows}

    async def page(self, tenant_id: str, after_number: str, limit: int) -> list[BlockedNumber]:
        rows = await self._session.execute(
            select(blocked_numbers)
            .where(blocked_numbers.c.tenant_id == tenant_id, blocked_numbers.c.number > after_number)
            .order_by(blocked_numbers.c.number)
            .limit(limit)
        )
        return [BlockedNumber(row.number, row.note, row.create_time) for row in rows]

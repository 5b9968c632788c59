"""SQL repository of SMS boxes and their revisions; every query is scoped by tenant."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from hibiki_runtime.db import among, as_utc
from sqlalchemy import Row, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hibiki_sms_gateway.adapters.sql import insert_ignoring_duplicates
from hibiki_sms_gateway.adapters.tables import sms_box_revisions, sms_boxes
from hibiki_sms_gateway.domain.sms_box import BoxRevision, SmsBox


def _box(row: Row[Any]) -> SmsBox:
    return SmsBox(
        row.tenant_id,
        row.box_number,
        row.box_name,
        row.message_text,
        row.url,
        row.revision,
        as_utc(row.created_at),
        as_utc(row.updated_at),
    )


class BoxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, tenant_id: str, box_number: str) -> SmsBox | None:
        row = (
            await self._session.execute(
                select(sms_boxes).where(
                    sms_boxes.c.tenant_id == tenant_id, sms_boxes.c.box_number == box_number
                )
            )
        ).first()
        return _box(row) if row else None

    async def get_many(self, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], SmsBox]:
        """The boxes found among (tenant_id, box_number) keys, by key; missing boxes are absent."""
        if not keys:
            return {}
        rows = await self._session.execute(
            select(sms_boxes).where(
                among(self._session, sms_boxes.c.tenant_id, {tenant for tenant, _ in keys}),
                among(self._session, sms_boxes.c.box_number, {number for _, number in keys}),
            )
        )
        # With several tenants the conditions match other tenants' boxes of the same numbers too.
        wanted = set(keys)
        return {key: _box(row) for row in rows if (key := (row.tenant_id, row.box_number)) in wanted}

    async def add(self, box: SmsBox, revision: BoxRevision) -> bool:
        """Insert a new box; False when the tenant already has a box with that number."""
        result = await self._session.execute(
            insert_ignoring_duplicates(
                self._session,
                sms_boxes,
                ["tenant_id", "box_number"],
                tenant_id=box.tenant_id,
                box_number=box.box_number,
                box_name=box.box_name,
                message_text=box.message_text,
                url=box.url,
                revision=box.revision,
                created_at=box.created_at,
                updated_at=box.updated_at,
            )
        )
        if getattr(result, "rowcount", 0) != 1:
            return False
        await self._add_revision(revision)
        return True

    async def save(self, box: SmsBox, revision: BoxRevision, *, previous_revision: int) -> bool:
        """Store an edited box if nobody saved another revision meanwhile (compare-and-set)."""
        result = await self._session.execute(
            update(sms_boxes)
            .where(
                sms_boxes.c.tenant_id == box.tenant_id,
                sms_boxes.c.box_number == box.box_number,
                sms_boxes.c.revision == previous_revision,
            )
            .values(
                message_text=box.message_text, url=box.url, revision=box.revision, updated_at=box.updated_at
            )
        )
        if getattr(result, "rowcount", 0) != 1:
            return False
        await self._add_revision(revision)
        return True

    async def _add_revision(self, revision: BoxRevision) -> None:
        await self._session.execute(insert(sms_box_revisions).values(**revision.__dict__))

    async def search(self, tenant_id: str, query: str, *, offset: int, limit: int) -> list[SmsBox]:
        statement = select(sms_boxes).where(sms_boxes.c.tenant_id == tenant_id)
        if query:
            # autoescape: % and _ typed by the user are literal characters, not wildcards.
            statement = statement.where(
                or_(
                    sms_boxes.c.box_number.contains(query, autoescape=True),
                    sms_boxes.c.box_name.contains(query, autoescape=True),
                )
            )
        rows = await self._session.execute(
            statement.order_by(sms_boxes.c.box_number).offset(offset).limit(limit)
        )
        return [_box(row) for row in rows]

    async def revisions(
        self, tenant_id: str, box_number: str, *, offset: int, limit: int
    ) -> list[BoxRevision]:
        rows = await self._session.execute(
            select(sms_box_revisions)
            .where(sms_box_revisions.c.tenant_id == tenant_id, sms_box_revisions.c.box_number == box_number)
            .order_by(sms_box_revisions.c.revision.desc())
            .offset(offset)
            .limit(limit)
        )
        return [BoxRevision(**{**row._mapping, "changed_at": as_utc(row.changed_at)}) for row in rows]

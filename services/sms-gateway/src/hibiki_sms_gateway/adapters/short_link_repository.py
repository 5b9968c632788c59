"""Tracked short links in SQL: stored with their message, counted atomically on each open."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hibiki_runtime.db import as_utc
from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hibiki_sms_gateway.adapters.tables import sms_short_links
from hibiki_sms_gateway.domain.short_links import ShortLink


def _link(row: Row[Any]) -> ShortLink:
    return ShortLink(
        token=row.token,
        request_id=row.request_id,
        tenant_id=row.tenant_id,
        target_url=row.target_url,
        short_url=row.short_url,
        created_at=as_utc(row.created_at),
        expires_at=as_utc(row.expires_at),
        clicks=row.clicks,
    )


class ShortLinkRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_all(self, links: Sequence[ShortLink]) -> None:
        """Store new links with one multi-row INSERT."""
        if not links:
            return
        await self._session.execute(
            sms_short_links.insert(),
            [
                {
                    "token": link.token,
                    "request_id": link.request_id,
                    "tenant_id": link.tenant_id,
                    "target_url": link.target_url,
                    "short_url": link.short_url,
                    "created_at": link.created_at,
                    "expires_at": link.expires_at,
                    "clicks": link.clicks,
                }
                for link in links
            ],
        )

    async def get(self, token: str) -> ShortLink | None:
        row = (
            await self._session.execute(select(sms_short_links).where(sms_short_links.c.token == token))
        ).first()
        return _link(row) if row else None

    async def count_click(self, token: str) -> int:
        """Add one open and return the new count; the row lock orders concurrent opens."""
        counted = await self._session.execute(
            update(sms_short_links)
            .where(sms_short_links.c.token == token)
            .values(clicks=sms_short_links.c.clicks + 1)
            .returning(sms_short_links.c.clicks)
        )
        return int(counted.scalar_one())

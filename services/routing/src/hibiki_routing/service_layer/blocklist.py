"""Use cases of a tenant's blocklist of caller numbers (rejected by flows that ask for it)."""

from __future__ import annotations

from dataclasses import replace

from hibiki_runtime.errors import AlreadyExists, InvalidArgument, NotFound
from hibiki_runtime.phone import require_phone
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hibiki_routing.adapters.blocklist_repository import AlreadyBlocked, BlockedNumber, BlocklistRepository

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_NOTE_LENGTH = 200


class BlocklistService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def add(self, tenant_id: str, blocked: BlockedNumber) -> BlockedNumber:
        blocked = replace(blocked, number=require_phone("blocked_number.number", blocked.number))
        if len(blocked.note) > MAX_NOTE_LENGTH:
            raise InvalidArgument.field("blocked_number.note", f"at most {MAX_NOTE_LENGTH} characters")
        async with self._sessions() as session, session.begin():
            try:
                return await BlocklistRepository(session).add(tenant_id, blocked)
            except AlreadyBlocked as error:
                raise AlreadyExists("the number is on the blocklist already") from error

    async def remove(self, tenant_id: str, number: str) -> None:
        number = require_phone("number", number)
        async with self._sessions() as session, session.begin():
            if not await BlocklistRepository(session).remove(tenant_id, number):
                raise NotFound("the number is not on the blocklist")

    async def page(
        self, tenant_id: str, after_number: str, page_size: int
    ) -> tuple[list[BlockedNumber], str]:
        """One page in number order, and the number to continue after ("" on the last page)."""
        if not 0 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidArgument.field(
                "page_size", f"must be 0 (default {DEFAULT_PAGE_SIZE}) to {MAX_PAGE_SIZE}"
            )
        limit = page_size or DEFAULT_PAGE_SIZE
        async with self._sessions() as session:
            found = await BlocklistRepository(session).page(tenant_id, after_number, limit + 1)
        more = len(found) > limit
        return found[:limit], found[limit - 1].number if more else ""

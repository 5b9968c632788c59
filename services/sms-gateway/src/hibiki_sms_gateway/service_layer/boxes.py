"""Use cases of SMS boxes: each runs in one transaction and is scoped to the caller's tenant."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from hibiki_runtime.errors import Aborted, AlreadyExists, InvalidArgument, NotFound
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hibiki_sms_gateway.adapters.box_repository import BoxRepository
from hibiki_sms_gateway.domain.message_text import DEFAULT_MAX_CHARACTERS, MessagePreview, preview
from hibiki_sms_gateway.domain.sms_box import BoxRevision, SmsBox, create_box, edit_box

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def page_window(page_size: int, page_token: str) -> tuple[int, int]:
    """(offset, limit) of a page; the token is the opaque offset handed out with the previous page."""
    # ASCII digits only ("²".isdigit() is true), and no more than a row count can be.
    if page_token and not (page_token.isascii() and page_token.isdigit() and len(page_token) <= 9):
        raise InvalidArgument.field("page_token", "is not a token returned by a previous page")
    limit = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    return int(page_token or 0), limit


def next_token(offset: int, limit: int, returned: int) -> str:
    return str(offset + limit) if returned == limit else ""


class BoxService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        max_characters: int = DEFAULT_MAX_CHARACTERS,
        short_link_base: str = "",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._max_characters = max_characters
        # Set when URLs go out as tracked short links: lengths are counted with the short link.
        self._short_link_base = short_link_base
        self._clock = clock

    async def create(
        self, tenant_id: str, actor: str, box_number: str, box_name: str, message_text: str, url: str
    ) -> SmsBox:
        box, revision = create_box(
            tenant_id,
            box_number,
            box_name,
            message_text,
            url,
            actor=actor,
            now=self._clock(),
            max_characters=self._max_characters,
            short_link_base=self._short_link_base,
        )
        async with self._sessions.begin() as session:
            if not await BoxRepository(session).add(box, revision):
                raise AlreadyExists(f"SMS box {box_number} already exists")
        return box

    async def get(self, tenant_id: str, box_number: str) -> SmsBox:
        async with self._sessions() as session:
            return await self._existing(BoxRepository(session), tenant_id, box_number)

    async def update(
        self, tenant_id: str, actor: str, box_number: str, changes: Mapping[str, str], expected_revision: int
    ) -> SmsBox:
        async with self._sessions.begin() as session:
            boxes = BoxRepository(session)
            box = await self._existing(boxes, tenant_id, box_number)
            updated, revision = edit_box(
                box,
                changes,
                expected_revision=expected_revision,
                actor=actor,
                now=self._clock(),
                max_characters=self._max_characters,
                short_link_base=self._short_link_base,
            )
            if not await boxes.save(updated, revision, previous_revision=box.revision):
                raise Aborted(f"box {box_number} was changed concurrently; reload and retry")
        return updated

    async def search(
        self, tenant_id: str, query: str, page_size: int, page_token: str
    ) -> tuple[list[SmsBox], str]:
        offset, limit = page_window(page_size, page_token)
        async with self._sessions() as session:
            found = await BoxRepository(session).search(tenant_id, query, offset=offset, limit=limit)
        return found, next_token(offset, limit, len(found))

    async def revisions(
        self, tenant_id: str, box_number: str, page_size: int, page_token: str
    ) -> tuple[list[BoxRevision], str]:
        offset, limit = page_window(page_size, page_token)
        async with self._sessions() as session:
            boxes = BoxRepository(session)
            await self._existing(boxes, tenant_id, box_number)
            found = await boxes.revisions(tenant_id, box_number, offset=offset, limit=limit)
        return found, next_token(offset, limit, len(found))

    def preview(self, message_text: str, url: str) -> MessagePreview:
        return preview(message_text, url, self._max_characters, self._short_link_base)

    @staticmethod
    async def _existing(boxes: BoxRepository, tenant_id: str, box_number: str) -> SmsBox:
        if not box_number:
            raise InvalidArgument.field("box_number", "is required")
        box = await boxes.get(tenant_id, box_number)
        if box is None:
            raise NotFound(f"SMS box {box_number} does not exist")
        return box

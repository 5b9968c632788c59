"""The tenant's opt-out list: recipients who asked not to get SMS from the tenant any more."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from hibiki_runtime.errors import InvalidArgument
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hibiki_sms_gateway.adapters.message_repository import MessageRepository
from hibiki_sms_gateway.domain.recipient import Refusal, classify_recipient


def _normalized(recipient: str) -> str:
    classified = classify_recipient(recipient, allow_m2m=True)
    if isinstance(classified, Refusal):
        raise InvalidArgument.field(
            "recipient", f"{classified.detail}: only Japanese mobile numbers can opt out"
        )
    return classified.e164


class OptOutService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._clock = clock

    async def add(self, tenant_id: str, recipient: str) -> str:
        e164 = _normalized(recipient)
        async with self._sessions.begin() as session:
            await MessageRepository(session).opt_out(tenant_id, e164, self._clock())
        return e164

    async def remove(self, tenant_id: str, recipient: str) -> bool:
        e164 = _normalized(recipient)
        async with self._sessions.begin() as session:
            return await MessageRepository(session).remove_opt_out(tenant_id, e164)

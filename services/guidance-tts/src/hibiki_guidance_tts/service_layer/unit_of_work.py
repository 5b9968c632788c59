"""One database transaction with the repositories of guidance-tts; rolls back unless committed."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hibiki_guidance_tts.adapters.repositories import (
    SqlAudioFileRepository,
    SqlAudioStore,
    SqlGuidanceRepository,
    SqlGuidanceUsageRepository,
)
from hibiki_guidance_tts.domain.ports import (
    AudioFileRepository,
    AudioStore,
    GuidanceRepository,
    GuidanceUsageRepository,
)


class UnitOfWork:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def __aenter__(self) -> UnitOfWork:
        self._session = self._sessions()
        self.audio: AudioStore = SqlAudioStore(self._session)
        self.audio_files: AudioFileRepository = SqlAudioFileRepository(self._session)
        self.guidances: GuidanceRepository = SqlGuidanceRepository(self._session)
        self.usages: GuidanceUsageRepository = SqlGuidanceUsageRepository(self._session)
        return self

    async def __aexit__(
        self, _type: type[BaseException] | None, _error: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self._session.rollback()
        await self._session.close()

    async def commit(self) -> None:
        await self._session.commit()

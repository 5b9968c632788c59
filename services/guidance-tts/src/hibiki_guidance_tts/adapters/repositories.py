"""SQL repositories: map rows to domain objects; every query is scoped by tenant_id."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from hibiki_runtime.db import as_utc
from sqlalchemy.ext.asyncio import AsyncSession

from hibiki_guidance_tts.adapters.tables import (
    audio_files,
    guidance_contents,
    guidance_usages,
    guidance_users,
    original_guidances,
    synthesized_audio,
)
from hibiki_guidance_tts.domain.model import (
    TELEPHONY_SAMPLE_RATE,
    AudioFile,
    AudioFormat,
    GuidanceType,
    GuidanceUser,
    OriginalGuidance,
    SynthesizedAudio,
    Wav,
)


def _name_filter(column: sa.Column[str], name_contains: str, after_name: str) -> list[sa.ColumnElement[bool]]:
    conditions = [column > after_name] if after_name else []
    if name_contains:
        escaped = name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(column.ilike(f"%{escaped}%", escape="\\"))
    return conditions


class SqlAudioStore:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, tenant_id: str, cache_key: str) -> SynthesizedAudio | None:
        table = synthesized_audio
        query = sa.select(table).where(table.c.tenant_id == tenant_id, table.c.cache_key == cache_key)
        row = (await self._session.execute(query)).one_or_none()
        if row is None:
            return None
        return SynthesizedAudio(
            cache_key=row.cache_key,
            mulaw_wav=row.mulaw_wav,
            pcm16_wav=row.pcm16_wav,
            pcm16_sample_rate=row.pcm16_sample_rate,
            duration_ms=row.duration_ms,
            content_hash=row.content_hash,
        )

    async def wav(self, tenant_id: str, cache_key: str, audio_format: AudioFormat) -> Wav | None:
        table = synthesized_audio
        column = table.c.mulaw_wav if audio_format is AudioFormat.MULAW_8K else table.c.pcm16_wav
        query = sa.select(column, table.c.pcm16_sample_rate).where(
            table.c.tenant_id == tenant_id, table.c.cache_key == cache_key
        )
        row = (await self._session.execute(query)).one_or_none()
        if row is None:
            return None
        rate = TELEPHONY_SAMPLE_RATE if audio_format is AudioFormat.MULAW_8K else row.pcm16_sample_rate
        return Wav(row[0], audio_format, rate, cache_key)

    async def has(self, tenant_id: str, cache_key: str) -> bool:
        table = synthesized_audio
        query = sa.select(table.c.cache_key).where(
            table.c.tenant_id == tenant_id, table.c.cache_key == cache_key
        )
        return (await self._session.execute(query)).first() is not None

    async def add(self, tenant_id: str, audio: SynthesizedAudio) -> None:
        await self._session.execute(
            sa.insert(synthesized_audio).values(
                tenant_id=tenant_id, created_at=datetime.now(UTC), **asdict(audio)
            )
        )

    async def delete_unreferenced(self, tenant_id: str, cache_key: str) -> None:
        """Delete the audio unless an audio file plays it or a user pinned it (a published flow version)."""
        used = sa.exists().where(audio_files.c.tenant_id == tenant_id, audio_files.c.cache_key == cache_key)
        pinned = sa.exists().where(
            guidance_contents.c.tenant_id == tenant_id,
            guidance_contents.c.cache_key == cache_key,
            guidance_usages.c.tenant_id == tenant_id,
            guidance_usages.c.guidance_id == guidance_contents.c.guidance_id,
            guidance_usages.c.content_revision == guidance_contents.c.content_revision,
        )
        await self._session.execute(
            sa.delete(synthesized_audio).where(
                synthesized_audio.c.tenant_id == tenant_id,
                synthesized_audio.c.cache_key == cache_key,
                ~used,
                ~pinned,
            )
        )


def _audio_file(row: Any) -> AudioFile:
    values = dict(row._mapping)
    return AudioFile(**{**values, "created_at": as_utc(row.created_at), "updated_at": as_utc(row.updated_at)})


class SqlAudioFileRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, tenant_id: str, file_id: str) -> AudioFile | None:
        query = sa.select(audio_files).where(
            audio_files.c.tenant_id == tenant_id, audio_files.c.id == file_id
        )
        row = (await self._session.execute(query)).one_or_none()
        return None if row is None else _audio_file(row)

    async def name_taken(self, tenant_id: str, name: str) -> bool:
        query = sa.select(audio_files.c.id).where(
            audio_files.c.tenant_id == tenant_id, audio_files.c.name == name
        )
        return (await self._session.execute(query)).first() is not None

    async def search(
        self, tenant_id: str, name_contains: str, after_name: str, limit: int
    ) -> list[AudioFile]:
        query = (
            sa.select(audio_files)
            .where(
                audio_files.c.tenant_id == tenant_id,
                *_name_filter(audio_files.c.name, name_contains, after_name),
            )
            .order_by(audio_files.c.name)
            .limit(limit)
        )
        return [_audio_file(row) for row in await self._session.execute(query)]

    async def add(self, audio_file: AudioFile) -> None:
        await self._session.execute(sa.insert(audio_files).values(**asdict(audio_file)))

    async def update(self, audio_file: AudioFile, expected_revision: int) -> bool:
        result = await self._session.execute(
            sa.update(audio_files)
            .where(
                audio_files.c.tenant_id == audio_file.tenant_id,
                audio_files.c.id == audio_file.id,
                audio_files.c.revision == expected_revision,
            )
            .values(**asdict(audio_file))
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def delete(self, tenant_id: str, file_id: str) -> None:
        await self._session.execute(
            sa.delete(audio_files).where(audio_files.c.tenant_id == tenant_id, audio_files.c.id == file_id)
        )


def _guidance(row: Any) -> OriginalGuidance:
    values = dict(row._mapping)
    return OriginalGuidance(
        **{
            **values,
            "type": GuidanceType(row.type),
            "created_at": as_utc(row.created_at),
            "updated_at": as_utc(row.updated_at),
        }
    )


class SqlGuidanceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, tenant_id: str, guidance_id: str) -> OriginalGuidance | None:
        table = original_guidances
        query = sa.select(table).where(table.c.tenant_id == tenant_id, table.c.id == guidance_id)
        row = (await self._session.execute(query)).one_or_none()
        return None if row is None else _guidance(row)

    async def name_taken(self, tenant_id: str, name: str) -> bool:
        table = original_guidances
        query = sa.select(table.c.id).where(table.c.tenant_id == tenant_id, table.c.name == name)
        return (await self._session.execute(query)).first() is not None

    async def search(
        self,
        tenant_id: str,
        guidance_type: GuidanceType | None,
        name_contains: str,
        after_name: str,
        limit: int,
    ) -> list[OriginalGuidance]:
        table = original_guidances
        conditions = [table.c.tenant_id == tenant_id, *_name_filter(table.c.name, name_contains, after_name)]
        if guidance_type is not None:
            conditions.append(table.c.type == guidance_type.value)
        query = sa.select(table).where(*conditions).order_by(table.c.name).limit(limit)
        return [_guidance(row) for row in await self._session.execute(query)]

    async def existing_ids(self, tenant_id: str, guidance_ids: Sequence[str]) -> set[str]:
        table = original_guidances
        query = sa.select(table.c.id).where(table.c.tenant_id == tenant_id, table.c.id.in_(set(guidance_ids)))
        return set((await self._session.execute(query)).scalars())

    async def using_audio_file(self, tenant_id: str, file_id: str) -> list[OriginalGuidance]:
        table = original_guidances
        query = sa.select(table).where(table.c.tenant_id == tenant_id, table.c.audio_file_id == file_id)
        return [_guidance(row) for row in await self._session.execute(query)]

    async def add(self, guidance: OriginalGuidance) -> None:
        await self._session.execute(sa.insert(original_guidances).values(**asdict(guidance)))

    async def update(self, guidance: OriginalGuidance, expected_revision: int) -> bool:
        table = original_guidances
        result = await self._session.execute(
            sa.update(table)
            .where(
                table.c.tenant_id == guidance.tenant_id,
                table.c.id == guidance.id,
                table.c.revision == expected_revision,
            )
            .values(**asdict(guidance))
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def delete(self, tenant_id: str, guidance_id: str) -> None:
        table = original_guidances
        await self._session.execute(
            sa.delete(table).where(table.c.tenant_id == tenant_id, table.c.id == guidance_id)
        )


class SqlGuidanceUsageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def users_of(self, tenant_id: str, guidance_id: str) -> Sequence[GuidanceUser]:
        query = (
            sa.select(guidance_users.c.user_id, guidance_users.c.display_name)
            .join(
                guidance_usages,
                sa.and_(
                    guidance_usages.c.tenant_id == guidance_users.c.tenant_id,
                    guidance_usages.c.user_id == guidance_users.c.user_id,
                ),
            )
            .where(guidance_usages.c.tenant_id == tenant_id, guidance_usages.c.guidance_id == guidance_id)
            .order_by(guidance_users.c.display_name)
        )
        return [GuidanceUser(row.user_id, row.display_name) for row in await self._session.execute(query)]

    async def content_revision(self, tenant_id: str, guidance_id: str, cache_key: str) -> int:
        """The number of this content of the guidance; a new one (last + 1) the first time it is pinned."""
        table = guidance_contents
        of_guidance = (table.c.tenant_id == tenant_id, table.c.guidance_id == guidance_id)
        found = (
            await self._session.execute(
                sa.select(table.c.content_revision).where(*of_guidance, table.c.cache_key == cache_key)
            )
        ).scalar_one_or_none()
        if found is not None:
            return int(found)
        last = (
            await self._session.execute(sa.select(sa.func.max(table.c.content_revision)).where(*of_guidance))
        ).scalar_one_or_none()
        revision = (last or 0) + 1
        await self._session.execute(
            sa.insert(table).values(
                tenant_id=tenant_id,
                guidance_id=guidance_id,
                content_revision=revision,
                cache_key=cache_key,
                created_at=datetime.now(UTC),
            )
        )
        return revision

    async def content_key(
        self, tenant_id: str, guidance_id: str, revision: int, *, pinned: bool
    ) -> str | None:
        """The audio of a content revision of a guidance; with `pinned`, only while some user pins it."""
        table = guidance_contents
        query = sa.select(table.c.cache_key).where(
            table.c.tenant_id == tenant_id,
            table.c.guidance_id == guidance_id,
            table.c.content_revision == revision,
        )
        if pinned:
            query = query.where(
                sa.exists().where(
                    guidance_usages.c.tenant_id == tenant_id,
                    guidance_usages.c.guidance_id == guidance_id,
                    guidance_usages.c.content_revision == revision,
                )
            )
        key = (await self._session.execute(query)).scalar_one_or_none()
        return None if key is None else str(key)

    async def pinned_keys(self, tenant_id: str, user_id: str) -> set[str]:
        """The audio keys the user pins now."""
        query = (
            sa.select(guidance_contents.c.cache_key)
            .join(
                guidance_usages,
                sa.and_(
                    guidance_usages.c.tenant_id == guidance_contents.c.tenant_id,
                    guidance_usages.c.guidance_id == guidance_contents.c.guidance_id,
                    guidance_usages.c.content_revision == guidance_contents.c.content_revision,
                ),
            )
            .where(guidance_usages.c.tenant_id == tenant_id, guidance_usages.c.user_id == user_id)
        )
        return set((await self._session.execute(query)).scalars())

    async def replace(
        self,
        tenant_id: str,
        user: GuidanceUser,
        version: int,
        guidance_ids: Sequence[str],
        content_revisions: Mapping[str, int] | None = None,
    ) -> bool:
        pins = content_revisions or {}
        known = (
            await self._session.execute(
                sa.select(guidance_users.c.version).where(
                    guidance_users.c.tenant_id == tenant_id, guidance_users.c.user_id == user.user_id
                )
            )
        ).scalar_one_or_none()
        if known is not None and known > version:
            return False
        user_key = {"tenant_id": tenant_id, "user_id": user.user_id}
        await self._session.execute(
            sa.delete(guidance_users).where(*(guidance_users.c[k] == v for k, v in user_key.items()))
        )
        await self._session.execute(
            sa.delete(guidance_usages).where(*(guidance_usages.c[k] == v for k, v in user_key.items()))
        )
        await self._session.execute(
            sa.insert(guidance_users).values(**user_key, display_name=user.display_name, version=version)
        )
        if guidance_ids:
            await self._session.execute(
                sa.insert(guidance_usages),
                [
                    {**user_key, "guidance_id": gid, "content_revision": pins.get(gid)}
                    for gid in sorted(set(guidance_ids))
                ],
            )
        return True

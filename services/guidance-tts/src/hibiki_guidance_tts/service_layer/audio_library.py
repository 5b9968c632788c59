"""Use cases of audio files (音声ファイル): synthesize, store content-addressed, read, revise, delete."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from cachetools import LRUCache
from hibiki_runtime.errors import AlreadyExists, FailedPrecondition, NotFound
from sqlalchemy.exc import IntegrityError

from hibiki_guidance_tts.adapters.metrics import GuidanceMetrics
from hibiki_guidance_tts.domain.model import AudioFile, AudioFormat, SynthesizedAudio, Wav, audio_cache_key
from hibiki_guidance_tts.domain.ports import Synthesizer
from hibiki_guidance_tts.domain.rules import check_audio_file_deletable, check_revision
from hibiki_guidance_tts.domain.text_rules import clean_name, clean_text
from hibiki_guidance_tts.service_layer.paging import decode_token, encode_token, page_limit
from hibiki_guidance_tts.service_layer.unit_of_work import UnitOfWork

DEFAULT_WAV_CACHE_BYTES = 16 * 1024 * 1024


class AudioLibrary:
    def __init__(
        self,
        unit_of_work: Callable[[], UnitOfWork],
        synthesizer: Synthesizer,
        metrics: GuidanceMetrics,
        wav_cache_bytes: int = DEFAULT_WAV_CACHE_BYTES,
    ) -> None:
        self._uow = unit_of_work
        self._synthesizer = synthesizer
        self._metrics = metrics
        # Stored audio never changes under its key (text + voice), so players' repeated fetches of the same
        # guidance skip reading the blob; the audio file itself is still looked up, so a deleted one is a 404.
        self._wavs: LRUCache[tuple[str, str, AudioFormat], Wav] = LRUCache(
            maxsize=wav_cache_bytes, getsizeof=lambda wav: len(wav.data)
        )
        self._silences: dict[int, SynthesizedAudio] = {}

    async def speech(self, tenant_id: str, text: str, *, trim_silence: bool = False) -> SynthesizedAudio:
        """Audio of `text`: the stored audio of the same text and voice if any, else fresh speech."""
        key = audio_cache_key(text, self._synthesizer.voice, trim_silence=trim_silence)
        async with self._uow() as uow:
            stored = await uow.audio.get(tenant_id, key)
        self._metrics.cache_lookups.labels("hit" if stored else "miss").inc()
        # Synthesis runs outside any transaction: it can take seconds.
        return stored or await self._synthesizer.synthesize(text, trim_silence=trim_silence)

    def silence(self, duration_ms: int, audio_format: AudioFormat) -> Wav:
        """A silent clip; the same for every tenant, encoded once per process."""
        audio = self._silences.get(duration_ms)
        if audio is None:
            audio = self._silences[duration_ms] = self._synthesizer.silence(duration_ms)
        return audio.wav(audio_format)

    async def preview(self, tenant_id: str, text: str) -> SynthesizedAudio:
        return await self.speech(tenant_id, clean_text("text", text))

    async def create(
        self,
        tenant_id: str,
        name: str,
        text: str,
        *,
        file_id: str = "",
        system: bool = False,
        trim_silence: bool = False,
    ) -> AudioFile:
        name, text = clean_name("name", name), clean_text("text", text)
        async with self._uow() as uow:
            if await uow.audio_files.name_taken(tenant_id, name):
                raise AlreadyExists(f"an audio file named {name!r} already exists")
        audio = await self.speech(tenant_id, text, trim_silence=trim_silence)
        now = datetime.now(UTC)
        audio_file = AudioFile(
            id=file_id or str(uuid.uuid4()),
            tenant_id=tenant_id,
            name=name,
            text=text,
            revision=1,
            cache_key=audio.cache_key,
            duration_ms=audio.duration_ms,
            content_hash=audio.content_hash,
            system=system,
            created_at=now,
            updated_at=now,
            trim_silence=trim_silence,
        )
        for attempt in (1, 2):
            try:
                async with self._uow() as uow:
                    await self._keep(uow, tenant_id, audio)
                    await uow.audio_files.add(audio_file)
                    await uow.commit()
                return audio_file
            except IntegrityError as error:  # a concurrent create took the name or stored the same audio
                async with self._uow() as uow:
                    if await uow.audio_files.name_taken(tenant_id, name):
                        raise AlreadyExists(f"an audio file named {name!r} already exists") from error
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def get(self, tenant_id: str, file_id: str) -> AudioFile:
        async with self._uow() as uow:
            return await _existing(uow, tenant_id, file_id)

    async def search(
        self, tenant_id: str, name_contains: str, page_size: int, page_token: str
    ) -> tuple[list[AudioFile], str]:
        limit = page_limit(page_size)
        async with self._uow() as uow:
            files = await uow.audio_files.search(
                tenant_id, name_contains, decode_token(page_token), limit + 1
            )
        more = len(files) > limit
        return files[:limit], encode_token(files[limit - 1].name) if more else ""

    async def update(self, tenant_id: str, file_id: str, text: str, expected_revision: int) -> AudioFile:
        """New text is synthesized and stored as the next revision; the same text changes nothing."""
        text = clean_text("text", text)
        current = await self.get(tenant_id, file_id)
        check_revision("expected_revision", current.revision, expected_revision)
        if text == current.text:
            return current
        audio = await self.speech(tenant_id, text, trim_silence=current.trim_silence)
        revised = current.with_audio(text, audio, datetime.now(UTC))
        async with self._uow() as uow:
            await self._keep(uow, tenant_id, audio)
            if not await uow.audio_files.update(revised, current.revision):
                latest = await _existing(uow, tenant_id, file_id)
                check_revision("expected_revision", latest.revision, current.revision)
            await uow.audio.delete_unreferenced(tenant_id, current.cache_key)
            await uow.commit()
        return revised

    async def delete(self, tenant_id: str, file_id: str) -> None:
        async with self._uow() as uow:
            audio_file = await _existing(uow, tenant_id, file_id)
            check_audio_file_deletable(audio_file, await uow.guidances.using_audio_file(tenant_id, file_id))
            try:
                await uow.audio_files.delete(tenant_id, file_id)
                await uow.audio.delete_unreferenced(tenant_id, audio_file.cache_key)
                await uow.commit()
            except IntegrityError as error:  # a guidance took it into use meanwhile
                raise FailedPrecondition(f"audio file {audio_file.name!r} was just taken into use") from error

    async def wav_of(self, uow: UnitOfWork, tenant_id: str, file_id: str, audio_format: AudioFormat) -> Wav:
        """Stored audio of an audio file of the tenant."""
        audio_file = await _existing(uow, tenant_id, file_id)
        return await self.wav_of_key(
            uow, tenant_id, audio_file.cache_key, audio_format, f"audio file {file_id!r}"
        )

    async def wav_of_key(
        self, uow: UnitOfWork, tenant_id: str, cache_key: str, audio_format: AudioFormat, what: str
    ) -> Wav:
        """Stored audio by its content key (of an audio file, or pinned by a user)."""
        key = (tenant_id, cache_key, audio_format)
        audio = self._wavs.get(key)
        self._metrics.wav_cache_lookups.labels("hit" if audio else "miss").inc()
        if audio is None:
            audio = await uow.audio.wav(tenant_id, cache_key, audio_format)
            if audio is None:  # foreign keys and pins make this impossible short of manual edits
                raise NotFound(f"audio of {what} is missing")
            if len(audio.data) <= self._wavs.maxsize:
                self._wavs[key] = audio
        return audio

    async def _keep(self, uow: UnitOfWork, tenant_id: str, audio: SynthesizedAudio) -> None:
        if not await uow.audio.has(tenant_id, audio.cache_key):
            await uow.audio.add(tenant_id, audio)


async def _existing(uow: UnitOfWork, tenant_id: str, file_id: str) -> AudioFile:
    audio_file = await uow.audio_files.get(tenant_id, file_id)
    if audio_file is None:
        raise NotFound(f"no audio file {file_id!r}")
    return audio_file

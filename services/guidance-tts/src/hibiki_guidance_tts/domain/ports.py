"""What the service layer needs from storage and the speech engine; adapters implement these."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from hibiki_guidance_tts.domain.model import (
    AudioFile,
    AudioFormat,
    GuidanceType,
    GuidanceUser,
    OriginalGuidance,
    SynthesizedAudio,
    VoiceSettings,
    Wav,
)


class Synthesizer(Protocol):
    voice: VoiceSettings

    async def synthesize(self, text: str, *, trim_silence: bool = False) -> SynthesizedAudio:
        """Speech for `text` in both formats; ResourceExhausted when the queue is full."""
        ...

    def silence(self, duration_ms: int) -> SynthesizedAudio:
        """`duration_ms` of silence in both formats."""
        ...


class AudioStore(Protocol):
    """Synthesized audio, content-addressed per tenant."""

    async def get(self, tenant_id: str, cache_key: str) -> SynthesizedAudio | None: ...

    async def has(self, tenant_id: str, cache_key: str) -> bool: ...

    async def wav(self, tenant_id: str, cache_key: str, audio_format: AudioFormat) -> Wav | None:
        """Only the requested format: players stream one, and the other may be megabytes."""
        ...

    async def add(self, tenant_id: str, audio: SynthesizedAudio) -> None: ...

    async def delete_unreferenced(self, tenant_id: str, cache_key: str) -> None: ...


class AudioFileRepository(Protocol):
    async def get(self, tenant_id: str, file_id: str) -> AudioFile | None: ...

    async def name_taken(self, tenant_id: str, name: str) -> bool: ...

    async def search(
        self, tenant_id: str, name_contains: str, after_name: str, limit: int
    ) -> list[AudioFile]: ...

    async def add(self, audio_file: AudioFile) -> None: ...

    async def update(self, audio_file: AudioFile, expected_revision: int) -> bool:
        """Store the new revision if the stored one is still `expected_revision`."""
        ...

    async def delete(self, tenant_id: str, file_id: str) -> None: ...


class GuidanceRepository(Protocol):
    async def get(self, tenant_id: str, guidance_id: str) -> OriginalGuidance | None: ...

    async def name_taken(self, tenant_id: str, name: str) -> bool: ...

    async def search(
        self,
        tenant_id: str,
        guidance_type: GuidanceType | None,
        name_contains: str,
        after_name: str,
        limit: int,
    ) -> list[OriginalGuidance]: ...

    async def existing_ids(self, tenant_id: str, guidance_ids: Sequence[str]) -> set[str]: ...

    async def using_audio_file(self, tenant_id: str, file_id: str) -> list[OriginalGuidance]: ...

    async def add(self, guidance: OriginalGuidance) -> None: ...

    async def update(self, guidance: OriginalGuidance, expected_revision: int) -> bool: ...

    async def delete(self, tenant_id: str, guidance_id: str) -> None: ...


class GuidanceUsageRepository(Protocol):
    """Who plays which guidance: a local read model, so deleting never calls routing."""

    async def users_of(self, tenant_id: str, guidance_id: str) -> Sequence[GuidanceUser]: ...

    async def replace(
        self,
        tenant_id: str,
        user: GuidanceUser,
        version: int,
        guidance_ids: Sequence[str],
        content_revisions: Mapping[str, int] | None = None,
    ) -> bool:
        """Record that `user` at `version` plays exactly `guidance_ids` (pinned to `content_revisions`, where
        named); False if a newer version is known."""
        ...

    async def content_revision(self, tenant_id: str, guidance_id: str, cache_key: str) -> int:
        """The content revision of the guidance whose audio is `cache_key`, numbered on first use."""
        ...

    async def content_key(
        self, tenant_id: str, guidance_id: str, revision: int, *, pinned: bool
    ) -> str | None:
        """The audio key of a content revision (with `pinned`: only while a user pins it)."""
        ...

    async def pinned_keys(self, tenant_id: str, user_id: str) -> set[str]: ...

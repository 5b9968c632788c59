"""How long the prompts of an action play: fetched from GuidanceService.StreamAudio, or a nominal duration."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
import soundfile
from hibiki.guidance.v1 import guidance_service_pb2, guidance_service_pb2_grpc

from hibiki_telephony_sim.behaviour import PromptRef


@dataclass
class PlayedAudio:
    """What playing some prompts took: simulated seconds, bytes fetched, and what went wrong."""

    seconds: float = 0.0
    bytes: int = 0
    fetched: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def audio_seconds(wav: bytes) -> float:
    """Playing time of a WAV file, read from its header (so any header layout and encoding count right)."""
    try:
        return float(soundfile.info(io.BytesIO(wav)).duration)
    except soundfile.LibsndfileError as error:
        raise UnreadableAudio(str(error)) from error


class UnreadableAudio(Exception):
    """What guidance-tts sent is not a WAV file."""


class AudioSource:
    """Nominal durations only: every prompt plays `nominal_seconds` (no audio is fetched)."""

    def __init__(self, nominal_seconds: float = 2.0) -> None:
        self.nominal_seconds = nominal_seconds

    async def play(self, prompts: Sequence[PromptRef]) -> PlayedAudio:
        return PlayedAudio(seconds=self.nominal_seconds * len(prompts))

    async def close(self) -> None:
        return None


class GuidanceAudioSource(AudioSource):
    """Fetches each prompt's audio through GuidanceService.StreamAudio like a media server, counting bytes.

    Prompts with neither guidance_id nor audio_file_id (text only) and failed fetches play the nominal
    duration. Audio is cached per id for the run (a media server caches too) unless `cache` is off.
    """

    def __init__(
        self,
        endpoint: str,
        token: str = "",
        nominal_seconds: float = 2.0,
        *,
        timeout: float = 5.0,
        cache: bool = True,
    ) -> None:
        super().__init__(nominal_seconds)
        self._channel = grpc.aio.insecure_channel(endpoint)
        self._stub = guidance_service_pb2_grpc.GuidanceServiceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._timeout = timeout
        self._cache: dict[str, tuple[int, float]] | None = {} if cache else None

    async def _fetch(self, prompt: PromptRef) -> tuple[int, float]:
        if prompt.guidance_id:
            request = guidance_service_pb2.StreamAudioRequest(guidance_id=prompt.guidance_id)
        else:
            request = guidance_service_pb2.StreamAudioRequest(audio_file_id=prompt.audio_file_id)
        request.format = guidance_service_pb2.AUDIO_FORMAT_WAV_MULAW_8K
        wav = bytearray()
        async for chunk in self._stub.StreamAudio(request, metadata=self._metadata, timeout=self._timeout):
            wav += chunk.data
        return len(wav), audio_seconds(bytes(wav))

    async def play(self, prompts: Sequence[PromptRef]) -> PlayedAudio:
        played = PlayedAudio()
        for prompt in prompts:
            key = f"guidance:{prompt.guidance_id}" if prompt.guidance_id else f"audio:{prompt.audio_file_id}"
            if not (prompt.guidance_id or prompt.audio_file_id):
                played.seconds += self.nominal_seconds
                continue
            cached = self._cache.get(key) if self._cache is not None else None
            if cached is not None:
                played.seconds += cached[1]
                continue
            try:
                size, seconds = await self._fetch(prompt)
            except grpc.aio.AioRpcError as error:
                played.errors.append(f"{key}: {error.code().name} {error.details()}")
                played.seconds += self.nominal_seconds
                continue
            except UnreadableAudio as error:
                played.errors.append(f"{key}: UNREADABLE {error}")
                played.seconds += self.nominal_seconds
                continue
            if self._cache is not None:
                self._cache[key] = (size, seconds)
            played.bytes += size
            played.fetched.append(key)
            played.seconds += seconds
        return played

    async def close(self) -> None:
        await self._channel.close()

"""Audio files (音声ファイル), original guidances (オリジナルガイダンス) and the users that hold them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum


class GuidanceType(StrEnum):
    """Kinds of original guidance a tenant needs for its routing flows."""

    PB_ROUTING = "pb_routing"  # 振り分けガイダンス【PB】: asks the caller to key digits
    ANNOUNCEMENT = "announcement"
    INVALID_INPUT = "invalid_input"  # 入力ミス時ガイダンス
    INPUT_TIMEOUT = "input_timeout"  # 入力タイムアウト時ガイダンス
    OUT_OF_HOURS = "out_of_hours"


class AudioFormat(StrEnum):
    MULAW_8K = "mulaw_8k"  # the telephony format
    PCM16 = "pcm16"


@dataclass(frozen=True)
class VoiceSettings:
    """Everything besides the text that changes the synthesized audio; part of the cache key."""

    engine: str
    speed: float = 1.0
    half_tone: float = 0.0


@dataclass(frozen=True)
class SynthesizedAudio:
    """Audio of one text in both stored formats."""

    cache_key: str
    mulaw_wav: bytes
    pcm16_wav: bytes
    pcm16_sample_rate: int
    duration_ms: int
    content_hash: str  # SHA-256 of the telephony WAV

    def wav(self, audio_format: AudioFormat) -> Wav:
        if audio_format is AudioFormat.MULAW_8K:
            return Wav(self.mulaw_wav, audio_format, TELEPHONY_SAMPLE_RATE, self.cache_key)
        return Wav(self.pcm16_wav, audio_format, self.pcm16_sample_rate, self.cache_key)


@dataclass(frozen=True)
class Wav:
    """One stored audio in one format, as delivered to players."""

    data: bytes
    format: AudioFormat
    sample_rate: int
    cache_key: str


TELEPHONY_SAMPLE_RATE = 8000


@dataclass(frozen=True)
class AudioFile:
    id: str
    tenant_id: str
    name: str
    text: str
    revision: int
    cache_key: str
    duration_ms: int
    content_hash: str
    system: bool
    created_at: datetime
    updated_at: datetime
    # Leading and trailing silence cut (clips joined into one utterance); new texts are cut the same way.
    trim_silence: bool = False

    def with_audio(self, text: str, audio: SynthesizedAudio, now: datetime) -> AudioFile:
        """The next revision of this file, speaking `text`."""
        return replace(
            self,
            text=text,
            revision=self.revision + 1,
            cache_key=audio.cache_key,
            duration_ms=audio.duration_ms,
            content_hash=audio.content_hash,
            updated_at=now,
        )


@dataclass(frozen=True)
class OriginalGuidance:
    id: str
    tenant_id: str
    type: GuidanceType
    name: str
    speech_synthesis: bool
    audio_file_id: str
    system: bool
    revision: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class GuidanceUser:
    """Something that plays a guidance, e.g. a published routing flow; named in refusals to delete."""

    user_id: str
    display_name: str


def audio_cache_key(text: str, voice: VoiceSettings, *, trim_silence: bool = False) -> str:
    """Content address of the audio of `text` spoken with `voice`: identical inputs reuse stored audio."""
    material: dict[str, object] = {
        "text": text,
        "engine": voice.engine,
        "speed": voice.speed,
        "half_tone": voice.half_tone,
    }
    if trim_silence:  # only then: keys of untrimmed audio stay what they always were
        material["trim_silence"] = True
    return _sha256(material)


def silence_cache_key(duration_ms: int) -> str:
    """Content address of a silent clip."""
    return _sha256({"silence_ms": duration_ms})


def _sha256(material: dict[str, object]) -> str:
    encoded = json.dumps(material, ensure_ascii=False, sort_keys=True).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()

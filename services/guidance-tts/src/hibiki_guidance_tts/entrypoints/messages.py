"""Translation between protobuf messages and domain objects."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration
from hibiki.guidance.v1 import guidance_service_pb2 as pb
from hibiki_runtime.errors import InvalidArgument
from hibiki_runtime.events import timestamp_of

from hibiki_guidance_tts.domain.model import (
    TELEPHONY_SAMPLE_RATE,
    AudioFile,
    AudioFormat,
    GuidanceType,
    OriginalGuidance,
)

_TYPES = {
    pb.GUIDANCE_TYPE_PB_ROUTING: GuidanceType.PB_ROUTING,
    pb.GUIDANCE_TYPE_ANNOUNCEMENT: GuidanceType.ANNOUNCEMENT,
    pb.GUIDANCE_TYPE_INVALID_INPUT: GuidanceType.INVALID_INPUT,
    pb.GUIDANCE_TYPE_INPUT_TIMEOUT: GuidanceType.INPUT_TIMEOUT,
    pb.GUIDANCE_TYPE_OUT_OF_HOURS: GuidanceType.OUT_OF_HOURS,
}
_TYPE_NUMBERS = {domain: number for number, domain in _TYPES.items()}
_FORMATS = {pb.AUDIO_FORMAT_WAV_MULAW_8K: AudioFormat.MULAW_8K, pb.AUDIO_FORMAT_WAV_PCM16: AudioFormat.PCM16}
_FORMAT_NUMBERS = {domain: number for number, domain in _FORMATS.items()}


def guidance_type(number: pb.GuidanceType.ValueType, field: str = "type") -> GuidanceType | None:
    """The domain type; None for UNSPECIFIED; InvalidArgument for numbers this server does not know."""
    if number == pb.GUIDANCE_TYPE_UNSPECIFIED:
        return None
    if number not in _TYPES:
        raise InvalidArgument.field(field, f"unknown guidance type {number}")
    return _TYPES[number]


def audio_format(number: pb.AudioFormat.ValueType) -> AudioFormat:
    """Requested format; UNSPECIFIED means the telephony format."""
    if number == pb.AUDIO_FORMAT_UNSPECIFIED:
        return AudioFormat.MULAW_8K
    if number not in _FORMATS:
        raise InvalidArgument.field("format", f"unknown audio format {number}")
    return _FORMATS[number]


def format_number(fmt: AudioFormat) -> pb.AudioFormat.ValueType:
    return _FORMAT_NUMBERS[fmt]


def duration(milliseconds: int) -> Duration:
    value = Duration()
    value.FromMilliseconds(milliseconds)
    return value


def audio_file_message(audio_file: AudioFile) -> pb.AudioFile:
    return pb.AudioFile(
        id=audio_file.id,
        name=audio_file.name,
        text=audio_file.text,
        revision=audio_file.revision,
        duration=duration(audio_file.duration_ms),
        sample_rate=TELEPHONY_SAMPLE_RATE,
        content_hash=audio_file.content_hash,
        create_time=timestamp_of(audio_file.created_at),
        update_time=timestamp_of(audio_file.updated_at),
    )


def guidance_message(guidance: OriginalGuidance) -> pb.OriginalGuidance:
    return pb.OriginalGuidance(
        id=guidance.id,
        type=_TYPE_NUMBERS[guidance.type],
        name=guidance.name,
        speech_synthesis=guidance.speech_synthesis,
        audio_file_id=guidance.audio_file_id,
        system=guidance.system,
        revision=guidance.revision,
        create_time=timestamp_of(guidance.created_at),
        update_time=timestamp_of(guidance.updated_at),
    )

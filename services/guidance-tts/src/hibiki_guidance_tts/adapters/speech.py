"""Open JTalk synthesis into telephony WAV files; runs inside worker processes (kept import-light)."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
import soundfile
import soxr

TELEPHONY_RATE = 8000
PCM16_RATE = 8000  # same band as the telephony file, linear: media servers that want L16
_INT16_FULL_SCALE = 32768.0
# Trimming keeps what lies between the first and last sample above -40 dBFS, plus this much either side.
_TRIM_THRESHOLD = 0.01
_TRIM_MARGIN_SECONDS = 0.05


@dataclass(frozen=True)
class Rendered:
    mulaw_wav: bytes
    pcm16_wav: bytes
    duration_ms: int
    content_hash: str


class NothingToSay(ValueError):
    """The engine produced no speech for the text (e.g. only punctuation)."""


def render(text: str, speed: float, half_tone: float, trim_silence: bool = False) -> Rendered:
    """Synthesize `text` and encode it as 8 kHz μ-law mono WAV and 16-bit PCM mono WAV.

    Open JTalk pads speech with about 0.3 s of silence at each end; `trim_silence` cuts that down to 50 ms,
    so that clips played one after another (digits of a number) sound like one utterance.
    """
    import pyopenjtalk  # imported here so that only worker processes load the dictionary

    samples, rate = pyopenjtalk.tts(text, speed=speed, half_tone=half_tone)
    if len(samples) == 0:
        raise NothingToSay(text)
    # Open JTalk returns float samples on the int16 scale.
    signal = np.clip(np.asarray(samples, dtype=np.float64) / _INT16_FULL_SCALE, -1.0, 1.0)
    if trim_silence:
        signal = _trimmed(signal, rate)
    return _encoded(soxr.resample(signal, rate, TELEPHONY_RATE, quality="HQ"))


def silence(duration_ms: int) -> Rendered:
    """`duration_ms` of silence in the same formats as speech."""
    return _encoded(np.zeros(round(duration_ms * TELEPHONY_RATE / 1000)))


def _trimmed(signal: np.ndarray, rate: int) -> np.ndarray:
    audible = np.flatnonzero(np.abs(signal) > _TRIM_THRESHOLD)
    if len(audible) == 0:
        return signal
    margin = round(_TRIM_MARGIN_SECONDS * rate)
    return signal[max(audible[0] - margin, 0) : audible[-1] + 1 + margin]


def _encoded(telephony: np.ndarray) -> Rendered:
    """8 kHz samples as both stored WAV formats."""
    mulaw = _wav(telephony, TELEPHONY_RATE, "ULAW")
    return Rendered(
        mulaw_wav=mulaw,
        pcm16_wav=_wav(telephony, PCM16_RATE, "PCM_16"),
        duration_ms=round(len(telephony) * 1000 / TELEPHONY_RATE),
        content_hash=hashlib.sha256(mulaw).hexdigest(),
    )


def warm_up() -> None:
    """Load the dictionary and voice before the first request needs them."""
    render("はい", 1.0, 0.0)


def _wav(signal: np.ndarray, rate: int, subtype: str) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(signal, -1.0, 1.0), rate, subtype=subtype, format="WAV")
    return buffer.getvalue()

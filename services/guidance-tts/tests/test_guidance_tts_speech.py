"""The real Open JTalk engine: what is stored must be playable telephony audio."""

import io

import numpy as np
import pytest
import soundfile
from hibiki_guidance_tts.adapters.speech import NothingToSay, render, silence

SHORT = "入力が確認できません。"
LONG = "入力が確認できません。案内をお聞きいただきもう一度入力してください。お電話ありがとうございました。"
RMS_FLOOR = 0.02  # speech sits around 0.1; silence or a broken encoder near 0


def decode(wav: bytes) -> tuple[np.ndarray, soundfile._SoundFileInfo]:
    info = soundfile.info(io.BytesIO(wav))
    samples, _ = soundfile.read(io.BytesIO(wav), dtype="float64")
    return samples, info


def test_telephony_audio_is_8khz_mulaw_mono_wav_with_speech() -> None:
    rendered = render(SHORT, 1.0, 0.0)
    samples, info = decode(rendered.mulaw_wav)
    assert rendered.mulaw_wav[:4] == b"RIFF" and rendered.mulaw_wav[8:12] == b"WAVE"
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "ULAW", 8000, 1)
    assert abs(info.duration * 1000 - rendered.duration_ms) <= 1
    assert float(np.sqrt(np.mean(samples**2))) > RMS_FLOOR


def test_pcm16_twin_holds_the_same_speech() -> None:
    rendered = render(SHORT, 1.0, 0.0)
    samples, info = decode(rendered.pcm16_wav)
    assert (info.subtype, info.samplerate, info.channels) == ("PCM_16", 8000, 1)
    mulaw, _ = decode(rendered.mulaw_wav)
    assert len(samples) == len(mulaw)
    assert float(np.sqrt(np.mean(samples**2))) > RMS_FLOOR


def test_duration_grows_with_the_text() -> None:
    short, long = render(SHORT, 1.0, 0.0), render(LONG, 1.0, 0.0)
    assert long.duration_ms > 2 * short.duration_ms


def test_same_text_renders_the_same_bytes_so_the_hash_identifies_the_audio() -> None:
    assert render(SHORT, 1.0, 0.0).content_hash == render(SHORT, 1.0, 0.0).content_hash
    assert render(SHORT, 1.0, 0.0).content_hash != render(SHORT, 1.3, 0.0).content_hash


def test_text_without_anything_speakable_is_reported() -> None:
    with pytest.raises(NothingToSay):
        render("※★", 1.0, 0.0)


def test_trimming_cuts_the_padding_but_keeps_all_of_the_speech() -> None:
    padded, trimmed = render("ナナ", 1.0, 0.0), render("ナナ", 1.0, 0.0, trim_silence=True)
    assert padded.duration_ms - trimmed.duration_ms > 400  # about 0.3 s at each end, 50 ms kept
    energy = [float(np.sum(decode(r.pcm16_wav)[0] ** 2)) for r in (padded, trimmed)]
    assert energy[1] == pytest.approx(energy[0], rel=0.01)


def test_silence_is_silent_telephony_audio_of_the_asked_length() -> None:
    rendered = silence(300)
    for wav, subtype in ((rendered.mulaw_wav, "ULAW"), (rendered.pcm16_wav, "PCM_16")):
        samples, info = decode(wav)
        assert (info.subtype, info.samplerate, info.duration) == (subtype, 8000, 0.3)
        assert not np.any(samples)
    assert rendered.duration_ms == 300

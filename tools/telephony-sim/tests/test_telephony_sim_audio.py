"""Fetching prompt audio through GuidanceService.StreamAudio (a fake server on 127.0.0.1)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import grpc
import numpy as np
import pytest
import soundfile
from hibiki.guidance.v1 import guidance_service_pb2, guidance_service_pb2_grpc
from hibiki_telephony_sim.audio import AudioSource, GuidanceAudioSource, UnreadableAudio, audio_seconds
from hibiki_telephony_sim.behaviour import PromptRef

TOKEN = "platform-token"


def wav(seconds: float, sample_rate: int, subtype: str) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, np.zeros(int(seconds * sample_rate)), sample_rate, subtype=subtype, format="WAV")
    return out.getvalue()


# 1.5 s of 8 kHz μ-law audio as guidance-tts writes it (a 58-byte header), streamed in three chunks
AUDIO = wav(1.5, 8000, "ULAW")
# guidance-tts's system prompts (system:<name>): short digit clips and a 0.3 s pause
SYSTEM_AUDIO = {
    **{f"system:digit-{d}": wav(0.4, 8000, "ULAW") for d in "0123456789"},
    "system:pause": wav(0.3, 8000, "ULAW"),
    "system:readback_confirm": wav(3.9, 8000, "ULAW"),
}


class FakeGuidance(guidance_service_pb2_grpc.GuidanceServiceServicer):
    def __init__(self) -> None:
        self.requests: list[guidance_service_pb2.StreamAudioRequest] = []

    async def StreamAudio(
        self,
        request: guidance_service_pb2.StreamAudioRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[guidance_service_pb2.StreamAudioResponse]:
        metadata = dict(context.invocation_metadata() or ())
        if metadata.get("authorization") != f"Bearer {TOKEN}":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown bearer token")
        self.requests.append(request)
        if request.guidance_id == "missing":
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such guidance")
        if request.guidance_id == "garbled":
            yield guidance_service_pb2.StreamAudioResponse(data=b"RIFF" + b"\0" * 60)
            return
        audio = AUDIO
        if request.guidance_id.startswith("system:"):
            if request.guidance_id not in SYSTEM_AUDIO:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"no system prompt {request.guidance_id!r}")
            audio = SYSTEM_AUDIO[request.guidance_id]
        for offset in range(0, len(audio), 4096):
            chunk = guidance_service_pb2.StreamAudioResponse(data=audio[offset : offset + 4096])
            if offset == 0:
                chunk.format = guidance_service_pb2.AUDIO_FORMAT_WAV_MULAW_8K
                chunk.sample_rate = 8000
                chunk.total_bytes = len(audio)
            yield chunk


@pytest.fixture
async def guidance() -> AsyncIterator[tuple[str, FakeGuidance]]:
    server = grpc.aio.server()
    servicer = FakeGuidance()  # type: ignore[abstract]  # only StreamAudio is served
    guidance_service_pb2_grpc.add_GuidanceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}", servicer
    await server.stop(None)


def test_audio_seconds_come_from_the_wav_header() -> None:
    assert audio_seconds(wav(1.0, 8000, "ULAW")) == 1.0
    assert audio_seconds(wav(2.5, 16000, "PCM_16")) == 2.5
    with pytest.raises(UnreadableAudio):
        audio_seconds(b"RIFF" + b"\0" * 60)


async def test_nominal_source_fetches_nothing() -> None:
    played = await AudioSource(2.5).play([PromptRef("g-1"), PromptRef(text="hello")])
    assert played.seconds == 5.0 and played.bytes == 0 and not played.fetched


async def test_fetches_audio_counts_bytes_and_caches_per_id(guidance: tuple[str, FakeGuidance]) -> None:
    endpoint, servicer = guidance
    source = GuidanceAudioSource(endpoint, TOKEN, nominal_seconds=2.0)
    try:
        played = await source.play([PromptRef(guidance_id="g-1"), PromptRef(audio_file_id="a-1")])
        assert played.bytes == 2 * len(AUDIO)
        assert played.seconds == pytest.approx(3.0)
        assert played.fetched == ["guidance:g-1", "audio:a-1"]
        assert servicer.requests[0].format == guidance_service_pb2.AUDIO_FORMAT_WAV_MULAW_8K
        assert servicer.requests[1].WhichOneof("source") == "audio_file_id"
        again = await source.play([PromptRef(guidance_id="g-1"), PromptRef(text="text only")])
        assert again.bytes == 0 and again.seconds == pytest.approx(1.5 + 2.0)
        assert len(servicer.requests) == 2
    finally:
        await source.close()


async def test_without_cache_every_prompt_is_fetched(guidance: tuple[str, FakeGuidance]) -> None:
    endpoint, servicer = guidance
    source = GuidanceAudioSource(endpoint, TOKEN, cache=False)
    try:
        for _ in range(3):
            await source.play([PromptRef(guidance_id="g-1")])
        assert len(servicer.requests) == 3
    finally:
        await source.close()


async def test_fetch_errors_are_reported_and_the_nominal_duration_is_played(
    guidance: tuple[str, FakeGuidance],
) -> None:
    endpoint, _ = guidance
    wrong_token = GuidanceAudioSource(endpoint, "nope", nominal_seconds=2.0)
    source = GuidanceAudioSource(endpoint, TOKEN, nominal_seconds=2.0)
    try:
        played = await wrong_token.play([PromptRef(guidance_id="g-1")])
        assert played.seconds == 2.0 and played.bytes == 0
        assert played.errors and "UNAUTHENTICATED" in played.errors[0]
        played = await source.play([PromptRef(guidance_id="missing")])
        assert played.errors and "NOT_FOUND" in played.errors[0]
        played = await source.play([PromptRef(guidance_id="garbled")])
        assert played.seconds == 2.0 and played.errors and "UNREADABLE" in played.errors[0]
    finally:
        await wrong_token.close()
        await source.close()


async def test_system_prompts_are_fetched_by_their_ids_like_guidances(
    guidance: tuple[str, FakeGuidance],
) -> None:
    endpoint, servicer = guidance
    readback = [
        PromptRef(guidance_id="system:pause", text="-")
        if d == "-"
        else PromptRef(f"system:digit-{d}", text=d)
        for d in "090-1234-5678"
    ]
    readback.append(PromptRef("system:readback_confirm", text="でよろしければ1を、訂正は2を押してください。"))
    source = GuidanceAudioSource(endpoint, TOKEN, nominal_seconds=2.0)
    try:
        played = await source.play(readback)
        assert not played.errors
        assert played.seconds == pytest.approx(11 * 0.4 + 2 * 0.3 + 3.9)
        assert len(played.fetched) == len(servicer.requests) == 12  # ten digits, the pause, the question
        assert {r.guidance_id for r in servicer.requests} == set(SYSTEM_AUDIO)
        again = await source.play([PromptRef("system:digit-7", text="7")])
        assert again.seconds == pytest.approx(0.4) and len(servicer.requests) == 12
        unknown = await source.play([PromptRef("system:welcome", text="ようこそ")])
        assert unknown.seconds == 2.0 and "NOT_FOUND" in unknown.errors[0]
    finally:
        await source.close()

"""guidance-tts as a real process on PostgreSQL: the seed's guidance workflow over gRPC and HTTP."""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator

import aiohttp
import grpc
import numpy as np
import pytest
import soundfile
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hibiki.guidance.v1 import guidance_service_pb2 as pb
from hibiki.guidance.v1 import guidance_service_pb2_grpc
from hibiki_devstack.infra import Postgres
from hibiki_devstack.stack import ServiceSpec, Stack
from hibiki_telephony_sim.audio import GuidanceAudioSource
from hibiki_telephony_sim.behaviour import PromptRef

from tests.integration.conftest import start_service

MENU_TEXT = "お電話ありがとうございます。資料のご請求は1を、その他のお問い合わせは2を押してください。"


def auth(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


OPERATOR_A, VIEWER_A, OPERATOR_B, PLATFORM_A = (
    auth("token-a-operator"),
    auth("token-a-viewer"),
    auth("token-b-operator"),
    auth("token-platform"),
)


@pytest.fixture(scope="module")
def guidance_tts(postgres: Postgres, stack: Stack) -> ServiceSpec:
    return start_service(
        stack,
        postgres,
        "guidance-tts",
        "hibiki_guidance_tts",
        HIBIKI_GRPC_HOST="127.0.0.1",
        HIBIKI_HTTP_HOST="127.0.0.1",
        HIBIKI_SYNTHESIS_WORKERS="1",
    )


@pytest.fixture(scope="module")
async def client(guidance_tts: ServiceSpec) -> AsyncIterator[guidance_service_pb2_grpc.GuidanceServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{guidance_tts.grpc_port}") as channel:
        yield guidance_service_pb2_grpc.GuidanceServiceStub(channel)


def field_violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    status.details[0].Unpack(bad_request)
    return {v.field: v.description for v in bad_request.field_violations}


def rms(wav: bytes) -> float:
    samples, _ = soundfile.read(io.BytesIO(wav))
    return float(np.sqrt(np.mean(samples**2)))


async def test_seed_workflow_create_file_register_pb_guidance_stream_audio(client) -> None:
    created = await client.CreateAudioFile(
        pb.CreateAudioFileRequest(name="メインメニュー", text=MENU_TEXT), metadata=OPERATOR_A
    )
    audio_file = created.audio_file
    registered = await client.CreateOriginalGuidance(
        pb.CreateOriginalGuidanceRequest(
            type=pb.GUIDANCE_TYPE_PB_ROUTING,
            name="振り分け",
            speech_synthesis=True,
            audio_file_id=audio_file.id,
        ),
        metadata=OPERATOR_A,
    )
    guidance = registered.original_guidance

    chunks = [
        chunk
        async for chunk in client.StreamAudio(
            pb.StreamAudioRequest(guidance_id=guidance.id, format=pb.AUDIO_FORMAT_WAV_MULAW_8K),
            metadata=PLATFORM_A,
        )
    ]

    wav = b"".join(chunk.data for chunk in chunks)
    assert len(chunks) >= 2 and all(len(c.data) <= 32 * 1024 for c in chunks)
    assert (chunks[0].total_bytes, chunks[0].sample_rate, chunks[0].format) == (
        len(wav),
        8000,
        pb.AUDIO_FORMAT_WAV_MULAW_8K,
    )
    info = soundfile.info(io.BytesIO(wav))
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "ULAW", 8000, 1)
    assert abs(info.duration - audio_file.duration.ToMilliseconds() / 1000) < 0.01
    assert rms(wav) > 0.02
    assert audio_file.sample_rate == 8000 and len(audio_file.content_hash) == 64
    assert (guidance.type, guidance.speech_synthesis, guidance.audio_file_id) == (
        pb.GUIDANCE_TYPE_PB_ROUTING,
        True,
        audio_file.id,
    )


async def test_same_text_reuses_audio_and_longer_text_lasts_longer(client, guidance_tts: ServiceSpec) -> None:
    short = (
        await client.CreateAudioFile(
            pb.CreateAudioFileRequest(name="短い", text="こんにちは。"), metadata=OPERATOR_A
        )
    ).audio_file
    again = (
        await client.CreateAudioFile(
            pb.CreateAudioFileRequest(name="短い2", text="こんにちは。"), metadata=OPERATOR_A
        )
    ).audio_file
    longer = (
        await client.CreateAudioFile(
            pb.CreateAudioFileRequest(name="長い", text="こんにちは。本日はお電話ありがとうございます。"),
            metadata=OPERATOR_A,
        )
    ).audio_file
    assert again.content_hash == short.content_hash
    assert longer.duration.ToMilliseconds() > short.duration.ToMilliseconds()
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{guidance_tts.http_port}/metrics") as reply,
    ):
        metrics = await reply.text()
    assert 'hibiki_guidance_tts_audio_cache_lookups_total{result="hit"}' in metrics
    assert "hibiki_guidance_tts_synthesis_duration_seconds_count" in metrics
    assert 'hibiki_guidance_tts_audio_served_bytes_total{channel="grpc_stream",format="mulaw_8k"}' in metrics


async def test_tenant_b_cannot_see_tenant_a_files(client) -> None:
    mine = (
        await client.CreateAudioFile(
            pb.CreateAudioFileRequest(name="A社の案内", text="エー社です。"), metadata=OPERATOR_A
        )
    ).audio_file
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await client.GetAudioFile(pb.GetAudioFileRequest(id=mine.id), metadata=OPERATOR_B)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await client.ListAudioFiles(pb.ListAudioFilesRequest(), metadata=OPERATOR_B)
    assert mine.id not in {f.id for f in listed.audio_files}
    with pytest.raises(grpc.aio.AioRpcError) as error:
        async for _ in client.StreamAudio(pb.StreamAudioRequest(audio_file_id=mine.id), metadata=OPERATOR_B):
            pass
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


async def test_every_tenant_has_undeletable_system_guidances(client) -> None:
    listed = await client.ListOriginalGuidances(
        pb.ListOriginalGuidancesRequest(type=pb.GUIDANCE_TYPE_INPUT_TIMEOUT), metadata=OPERATOR_B
    )
    (timeout,) = listed.original_guidances
    assert timeout.system
    audio_file = (
        await client.GetAudioFile(pb.GetAudioFileRequest(id=timeout.audio_file_id), metadata=OPERATOR_B)
    ).audio_file
    assert audio_file.text == "入力が確認できません。案内をお聞きいただきもう一度入力してください。"
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await client.DeleteOriginalGuidance(
            pb.DeleteOriginalGuidanceRequest(id=timeout.id), metadata=OPERATOR_B
        )
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await client.DeleteAudioFile(pb.DeleteAudioFileRequest(id=audio_file.id), metadata=OPERATOR_B)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "入力タイムアウト時ガイダンス(標準)" in (error.value.details() or "")


async def test_bad_input_gets_field_level_errors_and_roles_are_enforced(client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await client.CreateAudioFile(pb.CreateAudioFileRequest(name="", text="😀"), metadata=OPERATOR_A)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error.value) == {"name": "must not be empty"}
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await client.Preview(pb.PreviewRequest(text="あ" * 1001), metadata=OPERATOR_A)
    assert "text" in field_violations(error.value)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await client.CreateAudioFile(
            pb.CreateAudioFileRequest(name="x", text="こんにちは"), metadata=VIEWER_A
        )
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await client.CreateAudioFile(
            pb.CreateAudioFileRequest(name="メインメニュー", text="重複"), metadata=OPERATOR_A
        )
    assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_preview_returns_pcm16_without_storing(client) -> None:
    before = await client.ListAudioFiles(
        pb.ListAudioFilesRequest(name_contains="プレビュー"), metadata=OPERATOR_A
    )
    preview = await client.Preview(
        pb.PreviewRequest(text="プレビューです。", format=pb.AUDIO_FORMAT_WAV_PCM16), metadata=OPERATOR_A
    )
    info = soundfile.info(io.BytesIO(preview.audio))
    assert (info.subtype, info.channels, preview.format) == ("PCM_16", 1, pb.AUDIO_FORMAT_WAV_PCM16)
    assert preview.duration.ToMilliseconds() > 0 and rms(preview.audio) > 0.02
    after = await client.ListAudioFiles(
        pb.ListAudioFilesRequest(name_contains="プレビュー"), metadata=OPERATOR_A
    )
    assert list(after.audio_files) == list(before.audio_files) == []


async def test_http_get_serves_the_wav_to_authenticated_callers_of_the_tenant(client, guidance_tts) -> None:
    audio_file = (
        await client.CreateAudioFile(
            pb.CreateAudioFileRequest(name="ブラウザ", text="試聴用です。"), metadata=OPERATOR_A
        )
    ).audio_file
    url = f"http://127.0.0.1:{guidance_tts.http_port}/audio/{audio_file.id}.wav"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers={"Authorization": "Bearer token-a-operator"}) as reply:
            assert reply.status == 200 and reply.content_type == "audio/wav"
            wav = await reply.read()
        async with http.get(
            f"{url}?format=pcm16", headers={"Authorization": "Bearer token-platform"}
        ) as reply:
            assert reply.status == 200
            pcm16 = await reply.read()
        async with http.get(
            f"{url}?format=ogg", headers={"Authorization": "Bearer token-a-operator"}
        ) as reply:
            assert reply.status == 400
        async with http.get(url) as reply:
            assert reply.status == 401
        async with http.get(url, headers={"Authorization": "Bearer token-b-operator"}) as reply:
            assert reply.status == 404
        async with http.get(f"http://127.0.0.1:{guidance_tts.http_port}/metrics") as reply:
            metrics = await reply.text()
    assert soundfile.info(io.BytesIO(wav)).subtype == "ULAW"
    assert soundfile.info(io.BytesIO(pcm16)).subtype == "PCM_16"
    assert (
        f'hibiki_guidance_tts_audio_served_bytes_total{{channel="http",format="mulaw_8k"}} {len(wav)}.0'
        in metrics
    )
    assert "hibiki_guidance_tts_synthesis_queue_depth 0.0" in metrics


async def test_guidance_used_by_a_published_flow_cannot_be_deleted(client) -> None:
    audio_file = (
        await client.CreateAudioFile(
            pb.CreateAudioFileRequest(name="使用中", text="使用中の案内です。"), metadata=OPERATOR_A
        )
    ).audio_file
    guidance = (
        await client.CreateOriginalGuidance(
            pb.CreateOriginalGuidanceRequest(
                type=pb.GUIDANCE_TYPE_PB_ROUTING,
                name="使用中",
                speech_synthesis=True,
                audio_file_id=audio_file.id,
            ),
            metadata=OPERATOR_A,
        )
    ).original_guidance
    usage = pb.SetGuidanceUsageRequest(
        user_id="routing-flow/f-1", display_name="受付フロー v2", version=2, guidance_ids=[guidance.id]
    )
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await client.SetGuidanceUsage(usage, metadata=OPERATOR_A)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (await client.SetGuidanceUsage(usage, metadata=PLATFORM_A)).applied

    with pytest.raises(grpc.aio.AioRpcError) as error:
        await client.DeleteOriginalGuidance(
            pb.DeleteOriginalGuidanceRequest(id=guidance.id), metadata=OPERATOR_A
        )
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "受付フロー v2" in (error.value.details() or "")

    usage.version, usage.display_name = 3, "受付フロー v3"
    del usage.guidance_ids[:]
    assert (await client.SetGuidanceUsage(usage, metadata=PLATFORM_A)).applied
    await client.DeleteOriginalGuidance(pb.DeleteOriginalGuidanceRequest(id=guidance.id), metadata=OPERATOR_A)


async def test_system_prompts_are_served_by_id_to_players_of_each_tenant(client, guidance_tts) -> None:
    url = f"http://127.0.0.1:{guidance_tts.http_port}/audio"
    platform = {"Authorization": "Bearer token-platform"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/system:digit-7.wav", headers=platform) as reply:
            assert reply.status == 200 and reply.content_type == "audio/wav"
            digit = await reply.read()
        async with http.get(f"{url}/system:digit-7.wav?format=pcm16", headers=platform) as reply:
            assert reply.status == 200 and soundfile.info(io.BytesIO(await reply.read())).subtype == "PCM_16"
        async with http.get(f"{url}/system:welcome.wav", headers=platform) as reply:
            assert reply.status == 404 and "system:digit-0" in await reply.text()
        async with http.get(f"{url}/system:digit-7.wav") as reply:
            assert reply.status == 401
    assert soundfile.info(io.BytesIO(digit)).subtype == "ULAW" and rms(digit) > 0.02

    # the tenant's own system guidance, editable like any other; tenant B is untouched
    confirm = (
        await client.GetOriginalGuidance(
            pb.GetOriginalGuidanceRequest(id="system:readback_confirm"), metadata=OPERATOR_A
        )
    ).original_guidance
    assert confirm.system and confirm.type == pb.GUIDANCE_TYPE_PB_ROUTING
    edited = (
        await client.UpdateAudioFile(
            pb.UpdateAudioFileRequest(
                id=confirm.audio_file_id, text="でよろしければ1を、違う場合は2を押してください。"
            ),
            metadata=OPERATOR_A,
        )
    ).audio_file
    stream = client.StreamAudio(
        pb.StreamAudioRequest(guidance_id="system:readback_confirm"), metadata=PLATFORM_A
    )
    streamed = b"".join([chunk.data async for chunk in stream])
    assert hashlib.sha256(streamed).hexdigest() == edited.content_hash
    other = (
        await client.GetOriginalGuidance(
            pb.GetOriginalGuidanceRequest(id="system:readback_confirm"), metadata=OPERATOR_B
        )
    ).original_guidance
    assert other.id != confirm.id
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        async for _ in client.StreamAudio(
            pb.StreamAudioRequest(audio_file_id="system:welcome"), metadata=PLATFORM_A
        ):
            pass
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

    # a media server (the telephony simulator) plays a number read back: every clip fetched, none failing
    readback = [
        PromptRef("system:pause") if d == "-" else PromptRef(f"system:digit-{d}") for d in "090-1234-5678"
    ]
    source = GuidanceAudioSource(
        f"127.0.0.1:{guidance_tts.grpc_port}", "token-platform", nominal_seconds=60.0
    )
    try:
        played = await source.play([*readback, PromptRef("system:readback_confirm")])
    finally:
        await source.close()
    assert played.errors == [] and len(played.fetched) == 12
    assert 5.0 < played.seconds < 15.0  # eleven short digits, two pauses, the question

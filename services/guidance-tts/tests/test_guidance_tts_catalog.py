"""Use cases through the real wiring: SQLite with the service's migrations and the real speech engine."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hibiki.guidance.v1 import guidance_service_pb2 as pb
from hibiki.guidance.v1 import guidance_service_pb2_grpc
from hibiki_guidance_tts.adapters.metrics import GuidanceMetrics
from hibiki_guidance_tts.adapters.synthesizer import ProcessPoolSynthesizer
from hibiki_guidance_tts.domain.model import AudioFormat, GuidanceType, GuidanceUser
from hibiki_guidance_tts.entrypoints.grpc_api import GuidanceServicer
from hibiki_guidance_tts.entrypoints.http_api import add_audio_route
from hibiki_guidance_tts.entrypoints.main import MIGRATIONS
from hibiki_guidance_tts.service_layer.audio_library import AudioLibrary
from hibiki_guidance_tts.service_layer.guidance_catalog import GuidanceCatalog
from hibiki_guidance_tts.service_layer.unit_of_work import UnitOfWork
from hibiki_runtime.auth import StaticTokenAuthenticator
from hibiki_runtime.db import create_engine, session_factory, upgrade_to_head
from hibiki_runtime.errors import Aborted, AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from hibiki_runtime.grpc_server import create_server
from hibiki_runtime.metrics import RuntimeMetrics
from prometheus_client import CollectorRegistry

A, B = "tenant-a", "tenant-b"
MENU_TEXT = "お電話ありがとうございます。資料請求は1を、お問い合わせは2を押してください。"


@dataclass
class Service:
    library: AudioLibrary
    catalog: GuidanceCatalog
    registry: CollectorRegistry
    unit_of_work: Callable[[], UnitOfWork]

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    @property
    def syntheses(self) -> float:
        return self.metric("hibiki_guidance_tts_synthesis_duration_seconds_count")


@pytest.fixture(scope="module")
async def synthesizer_pool() -> AsyncIterator[
    tuple[ProcessPoolSynthesizer, GuidanceMetrics, CollectorRegistry]
]:
    registry = CollectorRegistry()
    metrics = GuidanceMetrics(registry)
    pool = ProcessPoolSynthesizer(metrics, workers=1, max_waiting=8)
    await pool.start()
    yield pool, metrics, registry
    await pool.stop()


@pytest.fixture
async def service(tmp_path: Path, synthesizer_pool) -> AsyncIterator[Service]:
    pool, metrics, registry = synthesizer_pool
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'guidance.db'}")
    await upgrade_to_head(engine, MIGRATIONS)
    unit_of_work = partial(UnitOfWork, session_factory(engine))
    library = AudioLibrary(unit_of_work, pool, metrics)
    yield Service(library, GuidanceCatalog(unit_of_work, library), registry, unit_of_work)
    await engine.dispose()


async def test_seed_workflow_create_file_register_guidance_fetch_audio(service: Service) -> None:
    audio_file = await service.library.create(A, "メインメニュー音声", MENU_TEXT)
    guidance = await service.catalog.create(A, GuidanceType.PB_ROUTING, "メインメニュー", True, audio_file.id)

    wav = await service.catalog.wav(A, AudioFormat.MULAW_8K, guidance_id=guidance.id)

    assert (audio_file.revision, guidance.revision, guidance.system) == (1, 1, False)
    info = soundfile.info(io.BytesIO(wav.data))
    assert (info.subtype, info.samplerate, info.channels, wav.sample_rate) == ("ULAW", 8000, 1, 8000)
    assert hashlib.sha256(wav.data).hexdigest() == audio_file.content_hash
    pcm = await service.catalog.wav(A, AudioFormat.PCM16, audio_file_id=audio_file.id)
    assert soundfile.info(io.BytesIO(pcm.data)).subtype == "PCM_16"
    samples, _ = soundfile.read(io.BytesIO(wav.data))
    assert float(np.sqrt(np.mean(samples**2))) > 0.02


async def test_repeated_fetches_are_served_from_memory_until_the_file_is_deleted(service: Service) -> None:
    audio_file = await service.library.create(A, "繰り返し", "もう一度お聞きください。")
    lookups = "hibiki_guidance_tts_wav_cache_lookups_total"
    misses, hits = service.metric(lookups, result="miss"), service.metric(lookups, result="hit")
    first = await service.catalog.wav(A, AudioFormat.MULAW_8K, audio_file_id=audio_file.id)
    second = await service.catalog.wav(A, AudioFormat.MULAW_8K, audio_file_id=audio_file.id)
    pcm = await service.catalog.wav(A, AudioFormat.PCM16, audio_file_id=audio_file.id)

    assert second.data == first.data and pcm.data != first.data
    assert service.metric(lookups, result="miss") - misses == 2  # one per format
    assert service.metric(lookups, result="hit") - hits == 1
    with pytest.raises(NotFound):
        await service.catalog.wav(B, AudioFormat.MULAW_8K, audio_file_id=audio_file.id)
    await service.library.delete(A, audio_file.id)
    with pytest.raises(NotFound):
        await service.catalog.wav(A, AudioFormat.MULAW_8K, audio_file_id=audio_file.id)


async def test_creating_the_same_text_again_reuses_the_stored_audio(service: Service) -> None:
    first = await service.library.create(A, "挨拶1", "本日はお電話ありがとうございます。")
    syntheses, hits = (
        service.syntheses,
        service.metric("hibiki_guidance_tts_audio_cache_lookups_total", result="hit"),
    )

    second = await service.library.create(A, "挨拶2", "本日はお電話ありがとうございます。")

    assert second.content_hash == first.content_hash and second.id != first.id
    assert service.syntheses == syntheses  # nothing synthesized
    assert service.metric("hibiki_guidance_tts_audio_cache_lookups_total", result="hit") == hits + 1


async def test_names_are_unique_per_tenant_only(service: Service) -> None:
    await service.library.create(A, "案内", "ご案内します。")
    with pytest.raises(AlreadyExists):
        await service.library.create(A, "案内", "別のご案内です。")
    await service.library.create(B, "案内", "ご案内します。")


async def test_tenant_b_cannot_see_or_use_tenant_a_files(service: Service) -> None:
    audio_file = await service.library.create(A, "秘密", "テナントエーの案内です。")
    with pytest.raises(NotFound):
        await service.library.get(B, audio_file.id)
    with pytest.raises(NotFound):
        await service.catalog.wav(B, AudioFormat.MULAW_8K, audio_file_id=audio_file.id)
    with pytest.raises(InvalidArgument) as error:
        await service.catalog.create(B, GuidanceType.PB_ROUTING, "借用", True, audio_file.id)
    assert error.value.violations[0].field == "audio_file_id"
    files, _ = await service.library.search(B, "", 0, "")
    assert audio_file.id not in {f.id for f in files}


async def test_guidance_in_use_by_a_published_flow_cannot_be_deleted(service: Service) -> None:
    audio_file = await service.library.create(A, "メニュー", MENU_TEXT)
    guidance = await service.catalog.create(A, GuidanceType.PB_ROUTING, "メニュー", True, audio_file.id)
    await service.catalog.record_usage(A, GuidanceUser("flow-1", "受付フロー v2"), 2, [guidance.id])

    with pytest.raises(FailedPrecondition, match="受付フロー v2"):
        await service.catalog.delete(A, guidance.id)
    with pytest.raises(FailedPrecondition, match="メニュー"):
        await service.library.delete(A, audio_file.id)

    with pytest.raises(InvalidArgument):  # usage of another tenant's guidance is not recordable
        await service.catalog.record_usage(B, GuidanceUser("flow-9", "B社フロー"), 1, [guidance.id])
    assert not await service.catalog.record_usage(A, GuidanceUser("flow-1", "受付フロー v1"), 1, [])
    assert await service.catalog.record_usage(A, GuidanceUser("flow-1", "受付フロー v3"), 3, [])
    await service.catalog.delete(A, guidance.id)
    await service.library.delete(A, audio_file.id)
    with pytest.raises(NotFound):
        await service.catalog.get(A, guidance.id)


async def test_every_tenant_starts_with_the_seed_system_guidances(service: Service) -> None:
    await service.catalog.provision_tenant(A)
    await service.catalog.provision_tenant(A)  # idempotent

    system, _ = await service.catalog.search(A, None, "", 0, "")
    texts = {}
    for guidance in system:
        assert guidance.system
        texts[guidance.type] = (await service.library.get(A, guidance.audio_file_id)).text
    assert texts == {
        GuidanceType.INVALID_INPUT: "入力が間違っています。案内をお聞きいただきもう一度入力してください。",
        GuidanceType.INPUT_TIMEOUT: "入力が確認できません。案内をお聞きいただきもう一度入力してください。",
    }
    with pytest.raises(FailedPrecondition, match="system guidance"):
        await service.catalog.delete(A, system[0].id)


async def test_two_replicas_provisioning_one_tenant_at_once_create_each_system_guidance_once(
    service: Service,
) -> None:
    other_replica = GuidanceCatalog(service.unit_of_work, service.library)

    await asyncio.gather(service.catalog.provision_tenant(B), other_replica.provision_tenant(B))

    guidances, _ = await service.catalog.search(B, None, "", 0, "")
    files, _ = await service.library.search(B, "", 0, "")
    assert sorted(g.type for g in guidances) == [GuidanceType.INPUT_TIMEOUT, GuidanceType.INVALID_INPUT]
    assert len(files) == 2


async def test_new_text_is_a_new_revision_and_stale_edits_abort(service: Service) -> None:
    created = await service.library.create(A, "営業時間", "営業時間は9時から17時です。")
    revised = await service.library.update(A, created.id, "営業時間は9時から18時までです。", 1)

    assert revised.revision == 2 and revised.content_hash != created.content_hash
    assert revised.duration_ms > 0 and (await service.library.get(A, created.id)).text == revised.text
    with pytest.raises(Aborted):
        await service.library.update(A, created.id, "営業時間は10時からです。", 1)
    unchanged = await service.library.update(A, created.id, "営業時間は9時から18時までです。", 2)
    assert unchanged.revision == 2


async def test_guidance_update_renames_and_repoints_with_revision_check(service: Service) -> None:
    first = await service.library.create(A, "音声1", "一番目の案内です。")
    second = await service.library.create(A, "音声2", "二番目の案内です。")
    guidance = await service.catalog.create(A, GuidanceType.ANNOUNCEMENT, "お知らせ", True, first.id)

    updated = await service.catalog.update(A, guidance.id, "お知らせ(新)", second.id, 1)

    assert (updated.name, updated.audio_file_id, updated.revision) == ("お知らせ(新)", second.id, 2)
    with pytest.raises(Aborted):
        await service.catalog.update(A, guidance.id, "", first.id, 1)
    await service.library.delete(A, first.id)  # no longer played by the guidance


async def test_listing_pages_through_names_in_order(service: Service) -> None:
    for number in range(5):
        await service.library.create(A, f"頁{number}", "ページの案内です。")
    page, token = await service.library.search(A, "頁", 2, "")
    names = [f.name for f in page]
    while token:
        page, token = await service.library.search(A, "頁", 2, token)
        names += [f.name for f in page]
    assert names == [f"頁{n}" for n in range(5)]
    with pytest.raises(InvalidArgument):
        await service.library.search(A, "", 2, "%%%")


async def test_name_search_ignores_case_and_treats_wildcards_literally(service: Service) -> None:
    await service.library.create(A, "Menu_1", "メニューです。")
    await service.library.create(A, "MENUX1", "メニューです。")
    found, _ = await service.library.search(A, "menu_", 0, "")
    assert [f.name for f in found] == ["Menu_1"]


async def test_preview_synthesizes_without_storing(service: Service) -> None:
    audio = await service.library.preview(A, "プレビューの案内です。")
    assert audio.duration_ms > 0
    files, _ = await service.library.search(A, "", 0, "")
    assert files == []


# ---- system prompts (system:<name>) ------------------------------------------------------------------

MULAW, PCM16 = AudioFormat.MULAW_8K, AudioFormat.PCM16


def duration(wav: bytes) -> float:
    return float(soundfile.info(io.BytesIO(wav)).duration)


async def test_a_system_prompt_is_synthesized_on_its_first_fetch_and_served_from_storage_after(
    service: Service,
) -> None:
    syntheses, lookups = service.syntheses, "hibiki_guidance_tts_wav_cache_lookups_total"

    first = await service.catalog.wav(A, MULAW, guidance_id="system:digit-7")
    assert service.syntheses == syntheses + 1
    hits = service.metric(lookups, result="hit")
    again = await service.catalog.wav(A, MULAW, audio_file_id="system:digit-7")  # either id field works
    pcm = await service.catalog.wav(A, PCM16, guidance_id="system:digit-7")

    assert service.syntheses == syntheses + 1  # nothing synthesized again
    assert again.data == first.data and service.metric(lookups, result="hit") == hits + 1
    assert soundfile.info(io.BytesIO(pcm.data)).subtype == "PCM_16"
    guidance = await service.catalog.get(A, "system:digit-7")
    audio_file = await service.library.get(A, guidance.audio_file_id)
    assert (guidance.system, guidance.type, audio_file.text) == (True, GuidanceType.ANNOUNCEMENT, "ナナ")
    assert hashlib.sha256(first.data).hexdigest() == audio_file.content_hash
    # a digit is cut to its speech (Open JTalk pads each end with ~0.3 s), so 11 of them make one number
    assert audio_file.trim_silence and duration(first.data) < 0.5


async def test_the_seed_defaults_resolve_to_the_guidances_the_tenant_starts_with(service: Service) -> None:
    await service.catalog.provision_tenant(A)
    syntheses = service.syntheses
    guidances, _ = await service.catalog.search(A, GuidanceType.INVALID_INPUT, "", 0, "")

    by_alias = await service.catalog.wav(A, MULAW, guidance_id="system:invalid_input")
    by_id = await service.catalog.wav(A, MULAW, guidance_id=guidances[0].id)

    assert by_alias.data == by_id.data and service.syntheses == syntheses
    assert (await service.catalog.get(A, "system:input_timeout")).type is GuidanceType.INPUT_TIMEOUT


async def test_an_edited_system_prompt_text_is_what_plays_and_only_in_that_tenant(service: Service) -> None:
    before = await service.catalog.wav(A, MULAW, guidance_id="system:readback_confirm")
    guidance = await service.catalog.get(A, "system:readback_confirm")
    edited = await service.library.update(
        A, guidance.audio_file_id, "でよろしければ1を、番号を入れ直す場合は2を押してください。", 0
    )

    after = await service.catalog.wav(A, MULAW, guidance_id="system:readback_confirm")
    other_tenant = await service.catalog.wav(B, MULAW, guidance_id="system:readback_confirm")

    assert hashlib.sha256(after.data).hexdigest() == edited.content_hash
    assert after.data != before.data and other_tenant.data == before.data
    assert (await service.catalog.get(B, "system:readback_confirm")).id != guidance.id
    with pytest.raises(NotFound):  # tenant B reaches its own system prompts only
        await service.catalog.wav(B, MULAW, guidance_id=guidance.id)
    digit = await service.catalog.get(A, "system:digit-0")
    revised = await service.library.update(A, digit.audio_file_id, "レイ", 0)
    assert revised.trim_silence and revised.duration_ms < 500  # new text, cut the same way


async def test_the_pause_is_300_ms_of_silence_without_synthesis_or_storage(service: Service) -> None:
    syntheses = service.syntheses
    for audio_format, subtype in ((MULAW, "ULAW"), (PCM16, "PCM_16")):
        wav = await service.catalog.wav(A, audio_format, audio_file_id="system:pause")
        info = soundfile.info(io.BytesIO(wav.data))
        samples, _ = soundfile.read(io.BytesIO(wav.data))
        assert (info.subtype, info.samplerate, info.duration) == (subtype, 8000, 0.3)
        assert not np.any(samples)
    assert service.syntheses == syntheses
    assert (await service.library.search(A, "", 0, ""))[0] == []
    with pytest.raises(NotFound, match="silence, not a guidance"):
        await service.catalog.get(A, "system:pause")


async def test_unknown_system_prompts_are_not_found_with_the_known_ones_listed(service: Service) -> None:
    for unknown in ("system:digit-10", "system:welcome"):
        with pytest.raises(NotFound, match=f"no system prompt '{unknown}'; system prompts are system:"):
            await service.catalog.wav(A, MULAW, guidance_id=unknown)
        with pytest.raises(NotFound):
            await service.catalog.wav_by_id(A, MULAW, unknown)


async def test_a_tenant_name_in_the_way_of_a_system_prompt_is_reported(service: Service) -> None:
    await service.library.create(A, "番号未使用アナウンス(標準)", "自前のアナウンスです。")
    with pytest.raises(FailedPrecondition, match="rename it"):
        await service.catalog.wav(A, MULAW, guidance_id="system:not_in_service")
    await service.catalog.wav(B, MULAW, guidance_id="system:not_in_service")


async def test_two_replicas_fetching_a_new_system_prompt_at_once_create_it_once(service: Service) -> None:
    other_replica = GuidanceCatalog(service.unit_of_work, service.library)

    first, second = await asyncio.gather(
        service.catalog.wav(B, MULAW, guidance_id="system:digit-3"),
        other_replica.wav(B, MULAW, guidance_id="system:digit-3"),
    )

    assert first.data == second.data
    guidances, _ = await service.catalog.search(B, None, "数字読み上げ", 0, "")
    files, _ = await service.library.search(B, "数字読み上げ", 0, "")
    assert [g.name for g in guidances] == [f.name for f in files] == ["数字読み上げ 3(標準)"]


TOKENS = {
    "platform-a": {"tenant_id": A, "role": "platform"},
    "platform-b": {"tenant_id": B, "role": "platform"},
    "viewer-a": {"tenant_id": A, "role": "viewer"},
}


@dataclass
class Edges:
    grpc: guidance_service_pb2_grpc.GuidanceServiceStub
    http: TestClient[web.Request, web.Application]


@pytest.fixture
async def edges(service: Service) -> AsyncIterator[Edges]:
    """The service's gRPC and HTTP edges on free ports of 127.0.0.1, with static tokens."""
    authenticator = StaticTokenAuthenticator(TOKENS)
    metrics = GuidanceMetrics(CollectorRegistry())
    servicer = GuidanceServicer(service.library, service.catalog, metrics)
    server, port, _ = create_server(
        "127.0.0.1:0",
        registrars=[
            (
                "GuidanceService",
                partial(guidance_service_pb2_grpc.add_GuidanceServiceServicer_to_server, servicer),
            )
        ],
        authenticator=authenticator,
        metrics=RuntimeMetrics("guidance-tts-test", CollectorRegistry()),
    )
    await server.start()
    app = web.Application()
    add_audio_route(app, service.catalog, authenticator, metrics)
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
        TestClient(TestServer(app, host="127.0.0.1")) as http,
    ):
        yield Edges(guidance_service_pb2_grpc.GuidanceServiceStub(channel), http)
    await server.stop(None)


async def streamed(edges: Edges, token: str, **source: str) -> bytes:
    request = pb.StreamAudioRequest(format=pb.AUDIO_FORMAT_WAV_MULAW_8K, **source)
    stream = edges.grpc.StreamAudio(request, metadata=(("authorization", f"Bearer {token}"),))
    return b"".join([chunk.data async for chunk in stream])


async def test_players_fetch_system_prompts_by_id_over_grpc_and_http(edges: Edges) -> None:
    digit = await streamed(edges, "platform-a", guidance_id="system:digit-7")
    pause = await streamed(edges, "platform-a", audio_file_id="system:pause")
    assert 0.2 < duration(digit) < 0.5 and duration(pause) == 0.3

    platform_a = {"Authorization": "Bearer platform-a"}
    async with edges.http.get("/audio/system:digit-7.wav", headers=platform_a) as reply:
        assert (reply.status, reply.content_type) == (200, "audio/wav")
        assert await reply.read() == digit
    async with edges.http.get("/audio/system:pause.wav?format=pcm16", headers=platform_a) as reply:
        assert soundfile.info(io.BytesIO(await reply.read())).subtype == "PCM_16"
    async with edges.http.get("/audio/system:readback_confirm.wav", headers=platform_a) as reply:
        assert reply.status == 200 and duration(await reply.read()) > 2.0


async def test_unknown_system_prompts_are_not_found_and_tokens_decide_the_tenant(
    edges: Edges, service: Service
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await streamed(edges, "platform-a", guidance_id="system:welcome")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no system prompt 'system:welcome'" in (error.value.details() or "")
    async with edges.http.get(
        "/audio/system:welcome.wav", headers={"Authorization": "Bearer platform-a"}
    ) as reply:
        assert reply.status == 404 and "system:digit-0" in await reply.text()
    async with edges.http.get("/audio/system:digit-1.wav") as reply:
        assert reply.status == 401
    async with edges.http.get(
        "/audio/system:digit-1.wav", headers={"Authorization": "Bearer viewer-a"}
    ) as reply:
        assert reply.status == 403
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await streamed(edges, "viewer-a", guidance_id="system:digit-1")
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

    await streamed(edges, "platform-b", guidance_id="system:digit-1")
    tenant_b = (await service.catalog.get(B, "system:digit-1")).id
    assert (await service.catalog.search(A, None, "数字読み上げ", 0, ""))[0] == []  # A's was not created
    with pytest.raises(grpc.aio.AioRpcError) as other_tenant:
        await streamed(edges, "platform-a", guidance_id=tenant_b)
    assert other_tenant.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_pinned_user_keeps_playing_the_audio_it_was_recorded_with(
    service: Service, edges: Edges
) -> None:
    """A published flow version hears its guidance as published, even after the audio changes."""
    first = await service.library.create(A, "案内A", "一番目の案内です。")
    guidance = await service.catalog.create(A, GuidanceType.ANNOUNCEMENT, "お知らせ", True, first.id)
    old_audio = (await service.catalog.wav(A, AudioFormat.MULAW_8K, guidance_id=guidance.id)).data
    v1 = GuidanceUser("routing-flow/f/v1", "受付フロー v1")

    applied, pins = await service.catalog.set_usage(A, v1, 1, [guidance.id], pin_content=True)
    assert (applied, pins) == (True, {guidance.id: 1})

    # The text changes (the old audio is no longer any file's), then the guidance plays another file.
    await service.library.update(A, first.id, "案内の文面を変えました。", 1)
    second = await service.library.create(A, "案内B", "二番目の案内です。")
    await service.catalog.update(A, guidance.id, "", second.id, 0)
    await service.library.delete(A, first.id)

    pinned = f"{guidance.id}@1"
    assert (await service.catalog.wav_by_id(A, AudioFormat.MULAW_8K, pinned)).data == old_audio
    assert await streamed(edges, "platform-a", guidance_id=pinned) == old_audio
    async with edges.http.get(
        f"/audio/{pinned}.wav", headers={"Authorization": "Bearer platform-a"}
    ) as reply:
        assert reply.status == 200 and await reply.read() == old_audio
    now = (await service.catalog.wav_by_id(A, AudioFormat.MULAW_8K, guidance.id)).data
    assert now != old_audio

    # The next version pins the new content; re-recording v1 with its pin keeps the old one.
    v2 = GuidanceUser("routing-flow/f/v2", "受付フロー v2")
    assert (await service.catalog.set_usage(A, v2, 2, [guidance.id], pin_content=True))[1] == {guidance.id: 2}
    again = await service.catalog.set_usage(
        A, v1, 1, [guidance.id], pin_content=True, content_revisions={guidance.id: 1}
    )
    assert again == (True, {guidance.id: 1})
    assert (await service.catalog.wav_by_id(A, AudioFormat.MULAW_8K, f"{guidance.id}@2")).data == now
    with pytest.raises(InvalidArgument):
        await service.catalog.set_usage(
            A, v1, 1, [guidance.id], pin_content=True, content_revisions={guidance.id: 9}
        )
    with pytest.raises(NotFound):
        await service.catalog.wav_by_id(A, AudioFormat.MULAW_8K, f"{guidance.id}@9")
    with pytest.raises(NotFound):  # pins are per tenant
        await service.catalog.wav_by_id(B, AudioFormat.MULAW_8K, pinned)

    # The same over gRPC, as routing records a version.
    reply = await edges.grpc.SetGuidanceUsage(
        pb.SetGuidanceUsageRequest(
            user_id="routing-flow/f/v3",
            display_name="受付フロー v3",
            version=3,
            guidance_ids=[guidance.id, "not-created"],
            skip_unknown=True,
            pin_content=True,
            content_revisions={guidance.id: 1},
        ),
        metadata=(("authorization", "Bearer platform-a"),),
    )
    assert reply.applied and dict(reply.content_revisions) == {guidance.id: 1}
    await service.catalog.set_usage(A, GuidanceUser("routing-flow/f/v3", "受付フロー v3"), 3, [])

    # Once no user pins it, the old audio goes with the usage.
    await service.catalog.set_usage(A, v1, 2, [])
    with pytest.raises(NotFound):
        await service.catalog.wav_by_id(A, AudioFormat.MULAW_8K, pinned)


async def test_a_draft_usage_skips_unknown_guidances_and_refusals_name_every_user(service: Service) -> None:
    audio_file = await service.library.create(A, "メニュー", MENU_TEXT)
    guidance = await service.catalog.create(A, GuidanceType.PB_ROUTING, "メニュー", True, audio_file.id)
    draft = GuidanceUser("routing-flow/f", "受付フロー (draft)")

    with pytest.raises(InvalidArgument):
        await service.catalog.set_usage(A, draft, 5, [guidance.id, "not-created-yet"])
    assert await service.catalog.set_usage(
        A, draft, 5, [guidance.id, "not-created-yet"], skip_unknown=True
    ) == (
        True,
        {},
    )
    await service.catalog.set_usage(A, GuidanceUser("routing-flow/f/v1", "受付フロー v1"), 1, [guidance.id])

    with pytest.raises(FailedPrecondition, match=r"受付フロー \(draft\), 受付フロー v1"):
        await service.catalog.delete(A, guidance.id)

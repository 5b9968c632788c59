"""GuidanceService servicer: authorize, decode, call the service layer, encode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from hibiki.guidance.v1 import guidance_service_pb2 as pb
from hibiki.guidance.v1 import guidance_service_pb2_grpc
from hibiki_runtime.auth import Role, require_role
from hibiki_runtime.errors import InvalidArgument

from hibiki_guidance_tts.adapters.metrics import GuidanceMetrics
from hibiki_guidance_tts.domain.model import GuidanceUser
from hibiki_guidance_tts.entrypoints import messages
from hibiki_guidance_tts.service_layer.audio_library import AudioLibrary
from hibiki_guidance_tts.service_layer.guidance_catalog import GuidanceCatalog

CHUNK_BYTES = 32 * 1024
# Guidance configuration is an operator's job; media servers (platform) read and stream audio.
EDITORS = (Role.OPERATOR,)
READERS = (Role.OPERATOR, Role.PLATFORM)
SERVICES = (Role.PLATFORM,)


class GuidanceServicer(guidance_service_pb2_grpc.GuidanceServiceServicer):
    def __init__(self, library: AudioLibrary, catalog: GuidanceCatalog, metrics: GuidanceMetrics) -> None:
        self._library = library
        self._catalog = catalog
        self._metrics = metrics

    async def _tenant(self, *roles: Role) -> str:
        tenant_id: str = require_role(*roles).tenant_id
        await self._catalog.provision_tenant(tenant_id)
        return tenant_id

    async def CreateAudioFile(
        self, request: pb.CreateAudioFileRequest, context: Any
    ) -> pb.CreateAudioFileResponse:
        tenant_id = await self._tenant(*EDITORS)
        created = await self._library.create(tenant_id, request.name, request.text)
        return pb.CreateAudioFileResponse(audio_file=messages.audio_file_message(created))

    async def GetAudioFile(self, request: pb.GetAudioFileRequest, context: Any) -> pb.GetAudioFileResponse:
        tenant_id = await self._tenant(*READERS)
        found = await self._library.get(tenant_id, request.id)
        return pb.GetAudioFileResponse(audio_file=messages.audio_file_message(found))

    async def ListAudioFiles(
        self, request: pb.ListAudioFilesRequest, context: Any
    ) -> pb.ListAudioFilesResponse:
        tenant_id = await self._tenant(*READERS)
        files, token = await self._library.search(
            tenant_id, request.name_contains, request.page_size, request.page_token
        )
        return pb.ListAudioFilesResponse(
            audio_files=[messages.audio_file_message(f) for f in files], next_page_token=token
        )

    async def UpdateAudioFile(
        self, request: pb.UpdateAudioFileRequest, context: Any
    ) -> pb.UpdateAudioFileResponse:
        tenant_id = await self._tenant(*EDITORS)
        revised = await self._library.update(tenant_id, request.id, request.text, request.expected_revision)
        return pb.UpdateAudioFileResponse(audio_file=messages.audio_file_message(revised))

    async def DeleteAudioFile(
        self, request: pb.DeleteAudioFileRequest, context: Any
    ) -> pb.DeleteAudioFileResponse:
        tenant_id = await self._tenant(*EDITORS)
        await self._library.delete(tenant_id, request.id)
        return pb.DeleteAudioFileResponse()

    async def CreateOriginalGuidance(
        self, request: pb.CreateOriginalGuidanceRequest, context: Any
    ) -> pb.CreateOriginalGuidanceResponse:
        tenant_id = await self._tenant(*EDITORS)
        created = await self._catalog.create(
            tenant_id,
            messages.guidance_type(request.type),
            request.name,
            request.speech_synthesis,
            request.audio_file_id,
        )
        return pb.CreateOriginalGuidanceResponse(original_guidance=messages.guidance_message(created))

    async def GetOriginalGuidance(
        self, request: pb.GetOriginalGuidanceRequest, context: Any
    ) -> pb.GetOriginalGuidanceResponse:
        tenant_id = await self._tenant(*READERS)
        found = await self._catalog.get(tenant_id, request.id)
        return pb.GetOriginalGuidanceResponse(original_guidance=messages.guidance_message(found))

    async def ListOriginalGuidances(
        self, request: pb.ListOriginalGuidancesRequest, context: Any
    ) -> pb.ListOriginalGuidancesResponse:
        tenant_id = await self._tenant(*READERS)
        found, token = await self._catalog.search(
            tenant_id,
            messages.guidance_type(request.type),
            request.name_contains,
            request.page_size,
            request.page_token,
        )
        return pb.ListOriginalGuidancesResponse(
            original_guidances=[messages.guidance_message(g) for g in found], next_page_token=token
        )

    async def UpdateOriginalGuidance(
        self, request: pb.UpdateOriginalGuidanceRequest, context: Any
    ) -> pb.UpdateOriginalGuidanceResponse:
        tenant_id = await self._tenant(*EDITORS)
        revised = await self._catalog.update(
            tenant_id, request.id, request.name, request.audio_file_id, request.expected_revision
        )
        return pb.UpdateOriginalGuidanceResponse(original_guidance=messages.guidance_message(revised))

    async def DeleteOriginalGuidance(
        self, request: pb.DeleteOriginalGuidanceRequest, context: Any
    ) -> pb.DeleteOriginalGuidanceResponse:
        tenant_id = await self._tenant(*EDITORS)
        await self._catalog.delete(tenant_id, request.id)
        return pb.DeleteOriginalGuidanceResponse()

    async def StreamAudio(
        self, request: pb.StreamAudioRequest, context: Any
    ) -> AsyncIterator[pb.StreamAudioResponse]:
        tenant_id = await self._tenant(*READERS)
        fmt = messages.audio_format(request.format)
        source = request.WhichOneof("source")
        if source is None or not getattr(request, source):
            raise InvalidArgument.field("source", "set guidance_id or audio_file_id")
        wav = await self._catalog.wav(tenant_id, fmt, **{source: getattr(request, source)})
        for offset in range(0, len(wav.data), CHUNK_BYTES):
            chunk = pb.StreamAudioResponse(data=wav.data[offset : offset + CHUNK_BYTES])
            if offset == 0:
                chunk.format = messages.format_number(fmt)
                chunk.sample_rate = wav.sample_rate
                chunk.total_bytes = len(wav.data)
            self._metrics.bytes_served.labels("grpc_stream", fmt.value).inc(len(chunk.data))
            yield chunk

    async def Preview(self, request: pb.PreviewRequest, context: Any) -> pb.PreviewResponse:
        tenant_id = await self._tenant(*EDITORS)
        fmt = messages.audio_format(request.format)
        audio = await self._library.preview(tenant_id, request.text)
        wav = audio.wav(fmt)
        self._metrics.bytes_served.labels("preview", fmt.value).inc(len(wav.data))
        return pb.PreviewResponse(
            audio=wav.data, format=messages.format_number(fmt), duration=messages.duration(audio.duration_ms)
        )

    async def SetGuidanceUsage(
        self, request: pb.SetGuidanceUsageRequest, context: Any
    ) -> pb.SetGuidanceUsageResponse:
        tenant_id = await self._tenant(*SERVICES)
        applied, pins = await self._catalog.set_usage(
            tenant_id,
            GuidanceUser(request.user_id, request.display_name),
            request.version,
            list(request.guidance_ids),
            skip_unknown=request.skip_unknown,
            pin_content=request.pin_content,
            content_revisions=dict(request.content_revisions),
        )
        return pb.SetGuidanceUsageResponse(applied=applied, content_revisions=pins)

"""Provisions the demo tenant through the public gRPC APIs only, as an operator would.

Idempotent across restarts (the SQLite data in var/ persists): each part is looked up by its name or number
first and created only when missing. What exists is kept as it is, so changes made to the demo tenant
through the APIs survive a restart; a flow that was never published is published.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hibiki.guidance.v1 import guidance_service_pb2 as guidance_pb
from hibiki.guidance.v1 import guidance_service_pb2_grpc as guidance_grpc
from hibiki.routing.v1 import routing_service_pb2 as routing_pb
from hibiki.routing.v1 import routing_service_pb2_grpc as routing_grpc
from hibiki.sms.v1 import sms_box_service_pb2 as sms_pb
from hibiki.sms.v1 import sms_box_service_pb2_grpc as sms_grpc

from hibiki_devstack.demo import MENU, SMS_BOX, SMS_SENT, AudioSpec, demo_flow

SYNTHESIS_DEADLINE = 30.0  # guidance-tts documents 30 s for CreateAudioFile
DEADLINE = 10.0


class ProvisioningFailed(RuntimeError):
    """A step of the provisioning was refused or not answered; the message names the step and the reason."""


def describe_rpc_error(error: grpc.aio.AioRpcError) -> str:
    """`CODE: details` plus the field violations of a google.rpc.BadRequest, if the status carries one."""
    text = f"{error.code().name}: {error.details() or ''}"
    status = rpc_status.from_call(error)
    for detail in status.details if status is not None else ():
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            text += "".join(f"; {v.field}: {v.description}" for v in bad_request.field_violations)
    return text


class _Named(Protocol):
    name: str


N = TypeVar("N", bound=_Named)
R = TypeVar("R")


async def find_named(list_page: Callable[[str], Awaitable[tuple[Sequence[N], str]]], name: str) -> N | None:
    """The item called exactly `name`, paging through a name-contains search."""
    page_token = ""
    while True:
        items, page_token = await list_page(page_token)
        for item in items:
            if item.name == name:
                return item
        if not page_token:
            return None


def played_guidance_ids(flow: routing_pb.Flow) -> set[str]:
    """The guidances the flow's menus and SMS nodes play (the ones the demo provisions)."""
    played = set()
    for node in flow.nodes:
        kind = node.WhichOneof("kind")
        if kind == "menu":
            played.add(node.menu.prompt_guidance_id)
        elif kind == "send_sms":
            played.add(node.send_sms.announcement_guidance_id)
    return played - {""}


@dataclass(frozen=True)
class DemoApis:
    """The three configuration APIs the demo tenant is provisioned through."""

    guidance: guidance_grpc.GuidanceServiceAsyncStub
    routing: routing_grpc.RoutingServiceAsyncStub
    sms: sms_grpc.SmsBoxServiceAsyncStub


@dataclass(frozen=True)
class DemoTenant:
    """What the demo tenant consists of once provisioned."""

    menu_guidance_id: str
    sms_sent_guidance_id: str
    flow_id: str
    live_version: int


class DemoProvisioner:
    """Creates what is missing of the demo tenant, one status line per part."""

    def __init__(self, apis: DemoApis, token: str, say: Callable[[str], None]) -> None:
        self._guidance = apis.guidance
        self._routing = apis.routing
        self._sms = apis.sms
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._say = say

    async def provision(self) -> DemoTenant:
        menu = await self._ensure_guidance(MENU, guidance_pb.GUIDANCE_TYPE_PB_ROUTING)
        sms_sent = await self._ensure_guidance(SMS_SENT, guidance_pb.GUIDANCE_TYPE_ANNOUNCEMENT)
        await self._ensure_sms_box()
        flow = await self._ensure_flow(menu.id, sms_sent.id)
        return DemoTenant(menu.id, sms_sent.id, flow.id, flow.published_version)

    async def _call(
        self, step: str, rpc: Callable[..., Awaitable[R]], request: Any, deadline: float = DEADLINE
    ) -> R:
        try:
            return await rpc(request, metadata=self._metadata, timeout=deadline)
        except grpc.aio.AioRpcError as error:
            raise ProvisioningFailed(f"{step}: {describe_rpc_error(error)}") from error

    async def _ensure_audio_file(self, spec: AudioSpec) -> guidance_pb.AudioFile:
        async def page(token: str) -> tuple[Sequence[guidance_pb.AudioFile], str]:
            request = guidance_pb.ListAudioFilesRequest(name_contains=spec.file_name, page_token=token)
            reply = await self._call("list audio files", self._guidance.ListAudioFiles, request)
            return reply.audio_files, reply.next_page_token

        found = await find_named(page, spec.file_name)
        if found is not None:
            self._say(f"  ✓ audio file    {spec.file_name} kept")
            return found
        request = guidance_pb.CreateAudioFileRequest(name=spec.file_name, text=spec.text)
        created = await self._call(
            f"create audio file {spec.file_name}", self._guidance.CreateAudioFile, request, SYNTHESIS_DEADLINE
        )
        seconds = created.audio_file.duration.ToTimedelta().total_seconds()
        self._say(f"  ✓ audio file    {spec.file_name} synthesized ({seconds:.1f} s of speech)")
        return created.audio_file

    async def _ensure_guidance(
        self, spec: AudioSpec, kind: guidance_pb.GuidanceType.ValueType
    ) -> guidance_pb.OriginalGuidance:
        async def page(token: str) -> tuple[Sequence[guidance_pb.OriginalGuidance], str]:
            request = guidance_pb.ListOriginalGuidancesRequest(
                type=kind, name_contains=spec.guidance_name, page_token=token
            )
            reply = await self._call("list original guidances", self._guidance.ListOriginalGuidances, request)
            return reply.original_guidances, reply.next_page_token

        found = await find_named(page, spec.guidance_name)
        if found is not None:
            self._say(f"  ✓ guidance      {spec.guidance_name} kept")
            return found
        audio_file = await self._ensure_audio_file(spec)
        request = guidance_pb.CreateOriginalGuidanceRequest(
            type=kind, name=spec.guidance_name, speech_synthesis=True, audio_file_id=audio_file.id
        )
        created = await self._call(
            f"create guidance {spec.guidance_name}", self._guidance.CreateOriginalGuidance, request
        )
        self._say(f"  ✓ guidance      {spec.guidance_name} created")
        return created.original_guidance

    async def _ensure_sms_box(self) -> sms_pb.SmsBox:
        request = sms_pb.GetSmsBoxRequest(box_number=SMS_BOX.number)
        try:
            found = await self._sms.GetSmsBox(request, metadata=self._metadata, timeout=DEADLINE)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise ProvisioningFailed(
                    f"get SMS box {SMS_BOX.number}: {describe_rpc_error(error)}"
                ) from error
        else:
            self._say(f"  ✓ SMS box       {SMS_BOX.number} {found.sms_box.box_name} kept")
            return found.sms_box
        create = sms_pb.CreateSmsBoxRequest(
            box_number=SMS_BOX.number,
            box_name=SMS_BOX.name,
            message_text=SMS_BOX.message_text,
            url=SMS_BOX.url,
        )
        created = await self._call(f"create SMS box {SMS_BOX.number}", self._sms.CreateSmsBox, create)
        self._say(f"  ✓ SMS box       {SMS_BOX.number} {SMS_BOX.name} created ({SMS_BOX.url})")
        return created.sms_box

    async def _ensure_flow(self, menu_guidance_id: str, sms_sent_guidance_id: str) -> routing_pb.Flow:
        wanted = demo_flow(menu_guidance_id, sms_sent_guidance_id)
        search = routing_pb.SearchFlowsRequest(dialed_number=wanted.dialed_number)
        found = (await self._call("search flows", self._routing.SearchFlows, search)).flows
        if found:
            flow = found[0]
            self._say(f"  ✓ flow          {flow.name} for {flow.dialed_number} kept")
            missing = played_guidance_ids(wanted) - played_guidance_ids(flow)
            if missing:
                # Edited on purpose, or guidance-tts data deleted but not routing data: say so only.
                self._say(
                    f"  ! flow          does not play the demo guidances {', '.join(sorted(missing))}; "
                    "kept as it is (delete the data dir to start the demo afresh)"
                )
        else:
            create = routing_pb.CreateFlowRequest(flow=wanted)
            flow = (await self._call(f"create flow {wanted.name}", self._routing.CreateFlow, create)).flow
            self._say(f"  ✓ flow          {flow.name} for {flow.dialed_number} created")
        if flow.published_version:
            self._say(f"  ✓ published     version {flow.published_version} is live")
            return flow
        publish = routing_pb.PublishFlowRequest(id=flow.id, expected_revision=flow.revision)
        published = await self._call(f"publish flow {flow.name}", self._routing.PublishFlow, publish)
        self._say(f"  ✓ published     version {published.version} is live")
        return published.flow


async def provision_demo_tenant(
    guidance_port: int, routing_port: int, sms_port: int, token: str, say: Callable[[str], None]
) -> DemoTenant:
    """Provision the demo tenant against services on 127.0.0.1; ProvisioningFailed names what failed."""
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{guidance_port}") as guidance,
        grpc.aio.insecure_channel(f"127.0.0.1:{routing_port}") as routing,
        grpc.aio.insecure_channel(f"127.0.0.1:{sms_port}") as sms,
    ):
        apis = DemoApis(
            guidance_grpc.GuidanceServiceStub(guidance),
            routing_grpc.RoutingServiceStub(routing),
            sms_grpc.SmsBoxServiceStub(sms),
        )
        return await DemoProvisioner(apis, token, say).provision()

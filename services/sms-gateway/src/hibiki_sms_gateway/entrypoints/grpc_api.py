"""SmsBoxService over gRPC: decode the request, check the role, call the service layer, encode the reply."""

from __future__ import annotations

from typing import Any

from hibiki.sms.v1 import sms_box_service_pb2 as pb
from hibiki.sms.v1 import sms_box_service_pb2_grpc as pb_grpc
from hibiki_runtime.auth import Principal, Role, require_role
from hibiki_runtime.events import timestamp_of
from hibiki_runtime.field_mask import update_paths

from hibiki_sms_gateway.domain.sms_box import EDITABLE_FIELDS, IMMUTABLE_FIELDS, BoxRevision, SmsBox
from hibiki_sms_gateway.service_layer.boxes import BoxService
from hibiki_sms_gateway.service_layer.opt_outs import OptOutService

_READERS = (Role.OPERATOR, Role.VIEWER)


def _box_message(box: SmsBox) -> pb.SmsBox:
    return pb.SmsBox(
        box_number=box.box_number,
        box_name=box.box_name,
        message_text=box.message_text,
        url=box.url,
        revision=box.revision,
        create_time=timestamp_of(box.created_at),
        update_time=timestamp_of(box.updated_at),
    )


def _revision_message(revision: BoxRevision) -> pb.SmsBoxRevision:
    return pb.SmsBoxRevision(
        revision=revision.revision,
        actor=revision.actor,
        change_time=timestamp_of(revision.changed_at),
        message_text_before=revision.message_text_before,
        message_text_after=revision.message_text_after,
        url_before=revision.url_before,
        url_after=revision.url_after,
    )


def _actor(principal: Principal) -> str:
    return principal.subject or f"{principal.role.value}@{principal.tenant_id}"


def requested_changes(request: pb.UpdateSmsBoxRequest) -> dict[str, str]:
    """Field name → new value of each field the mask names; an absent or empty mask is refused."""
    box = request.sms_box
    paths = update_paths(request.update_mask.paths, EDITABLE_FIELDS + IMMUTABLE_FIELDS)
    return {path: str(getattr(box, path)) for path in paths}


class SmsBoxServicer(pb_grpc.SmsBoxServiceServicer):
    def __init__(self, boxes: BoxService, opt_outs: OptOutService) -> None:
        self._boxes = boxes
        self._opt_outs = opt_outs

    async def CreateSmsBox(self, request: pb.CreateSmsBoxRequest, context: Any) -> pb.CreateSmsBoxResponse:
        principal = require_role(Role.OPERATOR)
        box = await self._boxes.create(
            principal.tenant_id,
            _actor(principal),
            request.box_number,
            request.box_name,
            request.message_text,
            request.url,
        )
        return pb.CreateSmsBoxResponse(sms_box=_box_message(box))

    async def GetSmsBox(self, request: pb.GetSmsBoxRequest, context: Any) -> pb.GetSmsBoxResponse:
        # Platform too: routing checks that the boxes a flow sends from exist before it publishes.
        principal = require_role(*_READERS, Role.PLATFORM)
        box = await self._boxes.get(principal.tenant_id, request.box_number)
        return pb.GetSmsBoxResponse(sms_box=_box_message(box))

    async def SearchSmsBoxes(
        self, request: pb.SearchSmsBoxesRequest, context: Any
    ) -> pb.SearchSmsBoxesResponse:
        principal = require_role(*_READERS)
        boxes, token = await self._boxes.search(
            principal.tenant_id, request.query, request.page_size, request.page_token
        )
        return pb.SearchSmsBoxesResponse(sms_boxes=[_box_message(b) for b in boxes], next_page_token=token)

    async def UpdateSmsBox(self, request: pb.UpdateSmsBoxRequest, context: Any) -> pb.UpdateSmsBoxResponse:
        principal = require_role(Role.OPERATOR)
        box = await self._boxes.update(
            principal.tenant_id,
            _actor(principal),
            request.sms_box.box_number,
            requested_changes(request),
            request.expected_revision,
        )
        return pb.UpdateSmsBoxResponse(sms_box=_box_message(box))

    async def ListSmsBoxRevisions(
        self, request: pb.ListSmsBoxRevisionsRequest, context: Any
    ) -> pb.ListSmsBoxRevisionsResponse:
        principal = require_role(*_READERS)
        revisions, token = await self._boxes.revisions(
            principal.tenant_id, request.box_number, request.page_size, request.page_token
        )
        return pb.ListSmsBoxRevisionsResponse(
            revisions=[_revision_message(r) for r in revisions], next_page_token=token
        )

    async def PreviewMessage(
        self, request: pb.PreviewMessageRequest, context: Any
    ) -> pb.PreviewMessageResponse:
        require_role(*_READERS)
        result = self._boxes.preview(request.message_text, request.url)
        return pb.PreviewMessageResponse(
            rendered_text=result.rendered_text,
            encoding=result.encoding,
            characters=result.characters,
            segments=result.segments,
            characters_left=result.characters_left,
            max_characters=result.max_characters,
            characters_over=result.characters_over,
        )

    async def AddOptOut(self, request: pb.AddOptOutRequest, context: Any) -> pb.AddOptOutResponse:
        principal = require_role(Role.OPERATOR)
        return pb.AddOptOutResponse(
            recipient=await self._opt_outs.add(principal.tenant_id, request.recipient)
        )

    async def RemoveOptOut(self, request: pb.RemoveOptOutRequest, context: Any) -> pb.RemoveOptOutResponse:
        principal = require_role(Role.OPERATOR)
        return pb.RemoveOptOutResponse(
            removed=await self._opt_outs.remove(principal.tenant_id, request.recipient)
        )

"""RoutingService over gRPC: decode the request, run the use case in the caller's tenant, encode the reply."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from hibiki.call.v1 import call_actions_pb2
from hibiki.routing.v1 import routing_service_pb2 as pb
from hibiki.routing.v1 import routing_service_pb2_grpc as pb_grpc
from hibiki.sms.v1 import sms_requests_pb2
from hibiki_runtime.auth import Principal, Role, require_role
from hibiki_runtime.errors import InvalidArgument

from hibiki_routing.adapters.blocklist_repository import BlockedNumber
from hibiki_routing.adapters.call_messages import outgoing
from hibiki_routing.adapters.flow_codec import flow_from_pb, flow_to_pb
from hibiki_routing.adapters.flow_repository import SearchFilter
from hibiki_routing.domain.dry_run import DryRun, Keys, ScriptedInput, Silence
from hibiki_routing.service_layer.blocklist import BlocklistService
from hibiki_routing.service_layer.flows import FlowService

Context = Any
READERS = (Role.OPERATOR, Role.VIEWER, Role.PLATFORM)


def _writer() -> Principal:
    return require_role(Role.OPERATOR)


def _reader() -> Principal:
    return require_role(*READERS)


def _page_token(after_id: str) -> str:
    return base64.urlsafe_b64encode(after_id.encode()).decode() if after_id else ""


def _after_id(token: str) -> str:
    try:
        after_id = base64.urlsafe_b64decode(token.encode()).decode() if token else ""
    except ValueError as error:
        raise InvalidArgument.field("page_token", "is not a token from a previous page") from error
    if not after_id.isprintable():  # NUL and other bytes no id holds (PostgreSQL refuses NUL in text)
        raise InvalidArgument.field("page_token", "is not a token from a previous page")
    return after_id


def _script(inputs: Any) -> list[ScriptedInput]:
    script: list[ScriptedInput] = []
    for index, given in enumerate(inputs):
        which = given.WhichOneof("kind")
        if which is None:
            raise InvalidArgument.field(f"inputs[{index}]", "set digits or timeout")
        script.append(Keys(given.digits) if which == "digits" else Silence())
    return script


def _dry_run_to_pb(run: DryRun) -> pb.DryRunFlowResponse:
    """The steps as they would be published, without the envelopes (no event exists)."""
    records = outgoing(run.state, [scripted.step for scripted in run.steps], "", "")
    response = pb.DryRunFlowResponse(
        call_ended=run.state.ended, inputs_used=run.inputs_used, awaiting_route_id=run.awaiting_route_id
    )
    for scripted, (_, _, message) in zip(run.steps, records, strict=True):
        message.ClearField("envelope")
        step = response.steps.add(step=scripted.step.number, answered=scripted.answered)
        if isinstance(message, sms_requests_pb2.SmsRequest):
            step.sms_request.CopyFrom(message)
        else:
            assert isinstance(message, call_actions_pb2.CallAction)
            step.action.CopyFrom(message)
    return response


def _blocked_to_pb(blocked: BlockedNumber) -> pb.BlockedNumber:
    message = pb.BlockedNumber(number=blocked.number, note=blocked.note)
    if blocked.create_time is not None:
        message.create_time.FromDatetime(blocked.create_time)
    return message


class RoutingServicer(pb_grpc.RoutingServiceServicer):
    def __init__(self, flows: FlowService, blocklist: BlocklistService) -> None:
        self._flows = flows
        self._blocklist = blocklist

    async def CreateFlow(self, request: pb.CreateFlowRequest, context: Context) -> pb.CreateFlowResponse:
        principal = _writer()
        flow = await self._flows.create(flow_from_pb(request.flow, principal.tenant_id))
        return pb.CreateFlowResponse(flow=flow_to_pb(flow))

    async def GetFlow(self, request: pb.GetFlowRequest, context: Context) -> pb.GetFlowResponse:
        principal = _reader()
        flow = await self._flows.get(principal.tenant_id, request.id, request.version)
        return pb.GetFlowResponse(flow=flow_to_pb(flow))

    async def SearchFlows(self, request: pb.SearchFlowsRequest, context: Context) -> pb.SearchFlowsResponse:
        principal = _reader()
        where = SearchFilter(request.name_contains, request.dialed_number, request.guidance_id)
        page = await self._flows.search(
            principal.tenant_id, where, _after_id(request.page_token), request.page_size
        )
        return pb.SearchFlowsResponse(
            flows=[flow_to_pb(f) for f in page.flows], next_page_token=_page_token(page.next_after_id)
        )

    async def UpdateFlow(self, request: pb.UpdateFlowRequest, context: Context) -> pb.UpdateFlowResponse:
        principal = _writer()
        changes = flow_from_pb(request.flow, principal.tenant_id)
        flow = await self._flows.update(
            principal.tenant_id, changes, list(request.update_mask.paths), request.expected_revision
        )
        return pb.UpdateFlowResponse(flow=flow_to_pb(flow))

    async def ValidateFlow(
        self, request: pb.ValidateFlowRequest, context: Context
    ) -> pb.ValidateFlowResponse:
        principal = _reader()
        check = await self._flows.check(principal.tenant_id, request.id)
        return pb.ValidateFlowResponse(
            valid=not check.problems,
            problems=[
                pb.FlowProblem(node_id=p.node_id, field=p.field, description=p.description)
                for p in check.problems
            ],
            warnings=[
                pb.FlowProblem(node_id=w.node_id, field=w.field, description=w.description)
                for w in check.warnings
            ],
        )

    async def PublishFlow(self, request: pb.PublishFlowRequest, context: Context) -> pb.PublishFlowResponse:
        principal = _writer()
        flow = await self._flows.publish(
            principal.tenant_id,
            request.id,
            request.expected_revision,
            principal.subject or principal.role.value,
        )
        return pb.PublishFlowResponse(flow=flow_to_pb(flow), version=flow.published_version)

    async def ListFlowVersions(
        self, request: pb.ListFlowVersionsRequest, context: Context
    ) -> pb.ListFlowVersionsResponse:
        principal = _reader()
        flow, versions = await self._flows.versions(principal.tenant_id, request.id)
        listed = []
        for version in versions:
            item = pb.FlowVersion(
                version=version.version,
                published_by=version.published_by,
                live=version.version == flow.published_version,
            )
            item.publish_time.FromDatetime(version.publish_time)
            listed.append(item)
        return pb.ListFlowVersionsResponse(versions=listed)

    async def RollbackFlow(
        self, request: pb.RollbackFlowRequest, context: Context
    ) -> pb.RollbackFlowResponse:
        principal = _writer()
        flow = await self._flows.rollback(
            principal.tenant_id,
            request.id,
            request.version,
            principal.subject or principal.role.value,
            discard_draft=request.discard_draft,
        )
        return pb.RollbackFlowResponse(flow=flow_to_pb(flow), version=flow.published_version)

    async def DryRunFlow(self, request: pb.DryRunFlowRequest, context: Context) -> pb.DryRunFlowResponse:
        principal = _reader()
        at = request.call_time.ToDatetime(tzinfo=UTC) if request.HasField("call_time") else datetime.now(UTC)
        run = await self._flows.dry_run(
            principal.tenant_id,
            request.id,
            request.version,
            _script(request.inputs),
            request.caller_number,
            request.caller_withheld,
            at,
        )
        return _dry_run_to_pb(run)

    async def AddBlockedNumber(
        self, request: pb.AddBlockedNumberRequest, context: Context
    ) -> pb.AddBlockedNumberResponse:
        principal = _writer()
        given = request.blocked_number
        blocked = await self._blocklist.add(principal.tenant_id, BlockedNumber(given.number, given.note))
        return pb.AddBlockedNumberResponse(blocked_number=_blocked_to_pb(blocked))

    async def RemoveBlockedNumber(
        self, request: pb.RemoveBlockedNumberRequest, context: Context
    ) -> pb.RemoveBlockedNumberResponse:
        principal = _writer()
        await self._blocklist.remove(principal.tenant_id, request.number)
        return pb.RemoveBlockedNumberResponse()

    async def ListBlockedNumbers(
        self, request: pb.ListBlockedNumbersRequest, context: Context
    ) -> pb.ListBlockedNumbersResponse:
        principal = _reader()
        found, after = await self._blocklist.page(
            principal.tenant_id, _after_id(request.page_token), request.page_size
        )
        return pb.ListBlockedNumbersResponse(
            blocked_numbers=[_blocked_to_pb(b) for b in found], next_page_token=_page_token(after)
        )

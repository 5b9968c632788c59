"""RoutingService over gRPC: decode the request, run the use case in the caller's tenant, encode the reply."""

from __future__ import annotations

import base64
from typing import Any

from hibiki.routing.v1 import routing_service_pb2 as pb
from hibiki.routing.v1 import routing_service_pb2_grpc as pb_grpc
from hibiki_runtime.auth import Principal, Role, require_role
from hibiki_runtime.errors import InvalidArgument

from hibiki_routing.adapters.flow_codec import flow_from_pb, flow_to_pb
from hibiki_routing.adapters.flow_repository import SearchFilter
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
        return base64.urlsafe_b64decode(token.encode()).decode() if token else ""
    except ValueError as error:
        raise InvalidArgument.field("page_token", "is not a token from a previous page") from error


class RoutingServicer(pb_grpc.RoutingServiceServicer):
    def __init__(self, flows: FlowService) -> None:
        self._flows = flows

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
        problems = await self._flows.validate(principal.tenant_id, request.id)
        return pb.ValidateFlowResponse(
            valid=not problems,
            problems=[
                pb.FlowProblem(node_id=p.node_id, field=p.field, description=p.description) for p in problems
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
            principal.tenant_id, request.id, request.version, principal.subject or principal.role.value
        )
        return pb.RollbackFlowResponse(flow=flow_to_pb(flow), version=flow.published_version)

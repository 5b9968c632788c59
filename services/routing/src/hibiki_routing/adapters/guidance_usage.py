"""Tells guidance-tts which guidances a flow's draft and published versions play (SetGuidanceUsage), and asks
it which guidances exist (GetOriginalGuidance)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Set

import grpc
from google.rpc import error_details_pb2, status_pb2
from hibiki.guidance.v1 import guidance_service_pb2 as pb
from hibiki.guidance.v1 import guidance_service_pb2_grpc as pb_grpc
from hibiki_runtime.errors import FailedPrecondition, HibikiError

from hibiki_routing.domain.editing import Flow

# guidance-tts answers these when the guidances are wrong, not when it is unwell.
_REFUSALS = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION)


class GuidanceServiceUnavailable(HibikiError):
    """guidance-tts could not be asked; publishing can be retried."""

    code = "UNAVAILABLE"


def _refusal_reasons(error: grpc.aio.AioRpcError) -> str:
    details = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    if isinstance(details, bytes):
        request = error_details_pb2.BadRequest()
        for detail in status_pb2.Status.FromString(details).details:
            if detail.Unpack(request):
                return "; ".join(v.description for v in request.field_violations)
    return error.details() or error.code().name


def draft_usage_version(flow: Flow, settled: bool) -> int:
    """SetGuidanceUsage's version of a flow's draft: it increases with every save, publish and rollback, since
    the revision and the published version never go back (and a rollback moves both)."""
    return (flow.revision << 32) | (flow.published_version << 1) | int(settled)


class GrpcGuidanceUsage:
    """Records usage with a platform token of the flow's tenant (guidance-tts takes the tenant from it)."""

    def __init__(self, address: str, tokens: Mapping[str, str], timeout_seconds: float = 5.0) -> None:
        self._address = address
        self._tokens = tokens
        self._timeout = timeout_seconds
        self._channel: grpc.aio.Channel | None = None

    def _stub(self, tenant_id: str) -> tuple[pb_grpc.GuidanceServiceAsyncStub, tuple[tuple[str, str], ...]]:
        token = self._tokens.get(tenant_id)
        if token is None:
            raise FailedPrecondition(f"routing has no guidance-tts token for tenant {tenant_id}")
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self._address)
        return pb_grpc.GuidanceServiceStub(self._channel), (("authorization", f"Bearer {token}"),)

    async def existing(self, tenant_id: str, ids: Set[str]) -> set[str]:
        """The guidances among `ids` the tenant has (GetOriginalGuidance); UNAVAILABLE if it cannot answer."""
        stub, metadata = self._stub(tenant_id)

        async def exists(guidance_id: str) -> bool:
            try:
                await stub.GetOriginalGuidance(
                    pb.GetOriginalGuidanceRequest(id=guidance_id), metadata=metadata, timeout=self._timeout
                )
            except grpc.aio.AioRpcError as error:
                if error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                    return False
                raise GuidanceServiceUnavailable(
                    f"guidance-tts did not answer: {error.code().name}"
                ) from error
            return True

        ids_in_order = sorted(ids)
        found = await asyncio.gather(*(exists(g) for g in ids_in_order))
        return {g for g, present in zip(ids_in_order, found, strict=True) if present}

    async def record_draft(self, flow: Flow, guidance_ids: Set[str], *, settled: bool) -> None:
        """The guidances the draft names (those the tenant does not have are left out), as user
        `routing-flow/<id>`: its version grows with the revision, then the published version, then `settled`
        (an exact record after the save outranks the cautious one made before it)."""
        await self._set(
            flow,
            pb.SetGuidanceUsageRequest(
                user_id=f"routing-flow/{flow.id}",
                display_name=f"{flow.name} (draft)"[:200],
                version=draft_usage_version(flow, settled),
                guidance_ids=sorted(guidance_ids),
                skip_unknown=True,
            ),
        )

    async def record_version(
        self,
        flow: Flow,
        version: int,
        guidance_ids: Set[str],
        content_revisions: Mapping[str, int] | None = None,
        *,
        skip_unknown: bool = False,
    ) -> dict[str, int]:
        """A published version's guidances as user `routing-flow/<id>/v<version>`, pinned to their current
        content or to `content_revisions`; returns the content revision of each guidance."""
        response = await self._set(
            flow,
            pb.SetGuidanceUsageRequest(
                user_id=f"routing-flow/{flow.id}/v{version}",
                display_name=f"{flow.name} v{version}"[:200],
                version=version,
                guidance_ids=sorted(guidance_ids),
                skip_unknown=skip_unknown,
                pin_content=True,
                content_revisions=dict(content_revisions or {}),
            ),
        )
        return dict(response.content_revisions)

    async def _set(self, flow: Flow, request: pb.SetGuidanceUsageRequest) -> pb.SetGuidanceUsageResponse:
        """FailedPrecondition when guidance-tts refuses the guidances, UNAVAILABLE when it cannot answer."""
        stub, metadata = self._stub(flow.tenant_id)
        try:
            response: pb.SetGuidanceUsageResponse = await stub.SetGuidanceUsage(
                request, metadata=metadata, timeout=self._timeout
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in _REFUSALS:
                raise FailedPrecondition(
                    f"guidance-tts refused the flow's guidances: {_refusal_reasons(error)}"
                ) from error
            raise GuidanceServiceUnavailable(f"guidance-tts did not answer: {error.code().name}") from error
        return response

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()

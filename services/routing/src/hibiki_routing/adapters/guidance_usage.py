"""Tells guidance-tts which guidances a published flow plays (GuidanceService.SetGuidanceUsage)."""

from __future__ import annotations

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


class GrpcGuidanceUsage:
    """Records usage with a platform token of the flow's tenant (guidance-tts takes the tenant from it)."""

    def __init__(self, address: str, tokens: Mapping[str, str], timeout_seconds: float = 5.0) -> None:
        self._address = address
        self._tokens = tokens
        self._timeout = timeout_seconds
        self._channel: grpc.aio.Channel | None = None

    async def record(self, flow: Flow, version: int, guidance_ids: Set[str]) -> None:
        """FailedPrecondition when guidance-tts refuses the guidances, UNAVAILABLE when it cannot answer."""
        token = self._tokens.get(flow.tenant_id)
        if token is None:
            raise FailedPrecondition(f"routing has no guidance-tts token for tenant {flow.tenant_id}")
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self._address)
        request = pb.SetGuidanceUsageRequest(
            user_id=f"routing-flow/{flow.id}",
            display_name=f"{flow.name} v{version}"[:200],
            version=version,
            guidance_ids=sorted(guidance_ids),
        )
        try:
            await pb_grpc.GuidanceServiceStub(self._channel).SetGuidanceUsage(
                request, metadata=(("authorization", f"Bearer {token}"),), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in _REFUSALS:
                raise FailedPrecondition(
                    f"guidance-tts refused the flow's guidances: {_refusal_reasons(error)}"
                ) from error
            raise GuidanceServiceUnavailable(f"guidance-tts did not answer: {error.code().name}") from error

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()

"""Asks sms-gateway which SMS boxes (蓄積BOX) a tenant has (SmsBoxService.GetSmsBox), for flow checks."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Set

import grpc
from hibiki.sms.v1 import sms_box_service_pb2 as pb
from hibiki.sms.v1 import sms_box_service_pb2_grpc as pb_grpc
from hibiki_runtime.errors import FailedPrecondition, HibikiError

# sms-gateway answers these for a box number the tenant does not have.
_ABSENT = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)


class SmsServiceUnavailable(HibikiError):
    """sms-gateway could not be asked; validating or publishing can be retried."""

    code = "UNAVAILABLE"


class GrpcSmsBoxes:
    """Looks boxes up with a platform token of the flow's tenant (sms-gateway takes the tenant from it)."""

    def __init__(self, address: str, tokens: Mapping[str, str], timeout_seconds: float = 5.0) -> None:
        self._address = address
        self._tokens = tokens
        self._timeout = timeout_seconds
        self._channel: grpc.aio.Channel | None = None

    async def existing(self, tenant_id: str, ids: Set[str]) -> set[str]:
        """The box numbers among `ids` the tenant has; UNAVAILABLE when sms-gateway cannot answer."""
        token = self._tokens.get(tenant_id)
        if token is None:
            raise FailedPrecondition(f"routing has no sms-gateway token for tenant {tenant_id}")
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self._address)
        stub = pb_grpc.SmsBoxServiceStub(self._channel)
        metadata = (("authorization", f"Bearer {token}"),)

        async def exists(box_number: str) -> bool:
            try:
                await stub.GetSmsBox(
                    pb.GetSmsBoxRequest(box_number=box_number), metadata=metadata, timeout=self._timeout
                )
            except grpc.aio.AioRpcError as error:
                if error.code() in _ABSENT:
                    return False
                raise SmsServiceUnavailable(f"sms-gateway did not answer: {error.code().name}") from error
            return True

        numbers = sorted(ids)
        found = await asyncio.gather(*(exists(n) for n in numbers))
        return {number for number, present in zip(numbers, found, strict=True) if present}

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from hibiki.sms.v1 import sms_box_service_pb2 as pb
from hibiki.sms.v1 import sms_box_service_pb2_grpc as pb_grpc
from hibiki_runtime.auth import Role, StaticTokenAuthenticator, require_role
from hibiki_runtime.errors import InvalidArgument, NotFound
from hibiki_runtime.grpc_server import create_server
from hibiki_runtime.logging import configure_logging
from hibiki_runtime.metrics import RuntimeMetrics
from prometheus_client import CollectorRegistry


class BoxServicer(pb_grpc.SmsBoxServiceServicer):
    async def GetSmsBox(self, request: pb.GetSmsBoxRequest, context: Any) -> pb.GetSmsBoxResponse:
        principal = require_role(Role.OPERATOR, Role.VIEWER)
        logging.getLogger("hibiki.test").info("looking up box %s", request.box_number)
        if request.box_number != "1":
            raise NotFound(f"no SMS box {request.box_number} for tenant {principal.tenant_id}")
        return pb.GetSmsBoxResponse(sms_box=pb.SmsBox(box_number="1", box_name=principal.tenant_id))

    async def UpdateSmsBox(self, request: pb.UpdateSmsBoxRequest, context: Any) -> pb.UpdateSmsBoxResponse:
        require_role(Role.OPERATOR)
        raise InvalidArgument.field("sms_box.box_name", "cannot be changed after creation")

    async def SearchSmsBoxes(
        self, request: pb.SearchSmsBoxesRequest, context: Any
    ) -> pb.SearchSmsBoxesResponse:
        return pb.SearchSmsBoxesResponse()

    async def PreviewMessage(
        self, request: pb.PreviewMessageRequest, context: Any
    ) -> pb.PreviewMessageResponse:
        raise RuntimeError("bug")


@pytest.fixture
async def channel() -> AsyncIterator[tuple[grpc.aio.Channel, CollectorRegistry]]:
    registry = CollectorRegistry()
    server, port, health = create_server(
        "127.0.0.1:0",
        registrars=[
            (
                "hibiki.sms.v1.SmsBoxService",
                lambda s: pb_grpc.add_SmsBoxServiceServicer_to_server(BoxServicer(), s),
            )
        ],
        authenticator=StaticTokenAuthenticator(
            {
                "op": {"tenant_id": "tenant-a", "role": "operator"},
                "view": {"tenant_id": "tenant-a", "role": "viewer"},
            }
        ),
        metrics=RuntimeMetrics("test", registry),
    )
    await server.start()
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel, registry
    await server.stop(None)


def auth(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


async def test_health_needs_no_token(channel: tuple[grpc.aio.Channel, CollectorRegistry]) -> None:
    reply = await health_pb2_grpc.HealthStub(channel[0]).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_calls_without_a_valid_token_are_unauthenticated(
    channel: tuple[grpc.aio.Channel, CollectorRegistry],
) -> None:
    stub = pb_grpc.SmsBoxServiceStub(channel[0])
    for metadata in ((), auth("wrong")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetSmsBox(pb.GetSmsBoxRequest(box_number="1"), metadata=metadata)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_principal_reaches_the_servicer_and_errors_map_to_codes(
    channel: tuple[grpc.aio.Channel, CollectorRegistry],
) -> None:
    stub = pb_grpc.SmsBoxServiceStub(channel[0])
    reply = await stub.GetSmsBox(pb.GetSmsBoxRequest(box_number="1"), metadata=auth("view"))
    assert reply.sms_box.box_name == "tenant-a"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetSmsBox(pb.GetSmsBoxRequest(box_number="2"), metadata=auth("view"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.UpdateSmsBox(pb.UpdateSmsBoxRequest(), metadata=auth("view"))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_invalid_argument_carries_field_violations(
    channel: tuple[grpc.aio.Channel, CollectorRegistry],
) -> None:
    stub = pb_grpc.SmsBoxServiceStub(channel[0])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.UpdateSmsBox(pb.UpdateSmsBoxRequest(), metadata=auth("op"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "sms_box.box_name: cannot be changed after creation"
    status = rpc_status.from_call(caught.value)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    status.details[0].Unpack(bad_request)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("sms_box.box_name", "cannot be changed after creation")
    ]


async def test_requests_breaking_the_contracts_declared_limits_never_reach_the_servicer(
    channel: tuple[grpc.aio.Channel, CollectorRegistry],
) -> None:
    stub = pb_grpc.SmsBoxServiceStub(channel[0])
    await stub.SearchSmsBoxes(pb.SearchSmsBoxesRequest(query="予" * 200), metadata=auth("op"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SearchSmsBoxes(pb.SearchSmsBoxesRequest(query="予" * 201), metadata=auth("op"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "query: must be at most 200 characters"


async def test_crashes_become_internal_and_every_call_is_counted(
    channel: tuple[grpc.aio.Channel, CollectorRegistry],
) -> None:
    stub = pb_grpc.SmsBoxServiceStub(channel[0])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.PreviewMessage(pb.PreviewMessageRequest(), metadata=auth("op"))
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert caught.value.details() == "internal error"
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.GetSmsBox(pb.GetSmsBoxRequest(box_number="1"))
    registry = channel[1]
    method = "/hibiki.sms.v1.SmsBoxService/"
    assert (
        registry.get_sample_value(
            "hibiki_test_grpc_requests_total", {"method": method + "PreviewMessage", "code": "INTERNAL"}
        )
        == 1.0
    )
    assert (
        registry.get_sample_value(
            "hibiki_test_grpc_requests_total", {"method": method + "GetSmsBox", "code": "UNAUTHENTICATED"}
        )
        == 1.0
    )


async def test_log_lines_of_an_rpc_carry_its_method_and_the_callers_trace_id(
    channel: tuple[grpc.aio.Channel, CollectorRegistry], capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("test", "INFO", json=True)
    stub = pb_grpc.SmsBoxServiceStub(channel[0])
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    await stub.GetSmsBox(
        pb.GetSmsBoxRequest(box_number="1"), metadata=(*auth("view"), ("traceparent", traceparent))
    )
    await stub.GetSmsBox(pb.GetSmsBoxRequest(box_number="1"), metadata=auth("view"))
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if "looking up box" in line]
    assert [line["rpc"] for line in lines] == ["/hibiki.sms.v1.SmsBoxService/GetSmsBox"] * 2
    assert lines[0]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert len(lines[1]["trace_id"]) == 32 and lines[1]["trace_id"] != lines[0]["trace_id"]

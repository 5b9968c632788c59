"""Exactness at the edges of the four running services (real PostgreSQL, as in production).

- Hostile values in every RPC's string and paging fields, and in every HTTP route's parameters, get a clear
  client error: never INTERNAL / UNKNOWN, never HTTP 500.
- An Update* RPC without a field mask is refused and erases nothing.
- Kanji beyond the BMP (𠮷 of 𠮷野家) go through validation, storage, synthesis and display.
- Phone numbers are accepted however they are written, and a search never silently misses them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message_factory import GetMessageClass
from hibiki.guidance.v1 import guidance_service_pb2 as gpb
from hibiki.guidance.v1 import guidance_service_pb2_grpc as gpb_grpc
from hibiki.reporting.v1 import report_service_pb2 as rpb
from hibiki.routing.v1 import routing_service_pb2 as fpb
from hibiki.routing.v1 import routing_service_pb2_grpc as fpb_grpc
from hibiki.sms.v1 import sms_box_service_pb2 as spb
from hibiki.sms.v1 import sms_box_service_pb2_grpc as spb_grpc
from hibiki_devstack.infra import Postgres
from hibiki_devstack.stack import ServiceSpec, Stack

from tests.integration.conftest import start_service, start_smsc

RUN = uuid.uuid4().hex[:6]
OPERATOR = (("authorization", "Bearer token-a-operator"),)
SERVICES = {
    "guidance-tts": ("hibiki_guidance_tts", gpb.DESCRIPTOR.services_by_name["GuidanceService"]),
    "routing": ("hibiki_routing", fpb.DESCRIPTOR.services_by_name["RoutingService"]),
    "sms-gateway": ("hibiki_sms_gateway", spb.DESCRIPTOR.services_by_name["SmsBoxService"]),
    "reporting": ("hibiki_reporting", rpb.DESCRIPTOR.services_by_name["ReportService"]),
}
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNAVAILABLE}
HOSTILE_TEXT = [
    "x" * 100_000,  # far over every declared limit
    "𠮷" * 5_000,
    "!!not-a-token!!",
    "AAAA",  # base64 of NUL bytes
    "9" * 40,  # digits beyond any integer column
    "²³",  # digits to str.isdigit(), not to int()
    "-1",
    "../../etc/passwd",
    "\u202e\ufeff",
    "０９０－１２３４－５６７８",
]
HOSTILE_NUMBERS = {
    FieldDescriptor.TYPE_UINT32: [2**32 - 1],
    FieldDescriptor.TYPE_INT32: [-(2**31), -1],
    FieldDescriptor.TYPE_INT64: [-(2**63)],
    FieldDescriptor.TYPE_UINT64: [2**64 - 1],
}


@pytest.fixture(scope="module")
def services(work_dir: Any, postgres: Postgres, stack: Stack) -> Iterator[dict[str, ServiceSpec]]:
    smsc = start_smsc(stack, work_dir, f"edges-smsc-{RUN}", [])
    extra = {
        "sms-gateway": {
            "HIBIKI_SMPP_PORT": str(smsc.port),
            "HIBIKI_SMS_CARRIER_TABLE_FILE": str(smsc.scenario),
        }
    }
    specs = {
        name: start_service(stack, postgres, name, module, **extra.get(name, {}))
        for name, (module, _) in SERVICES.items()
    }
    yield specs
    for module, _ in SERVICES.values():
        stack.stop_module(module)


@pytest.fixture(scope="module")
async def channels(services: dict[str, ServiceSpec]) -> AsyncIterator[dict[str, grpc.aio.Channel]]:
    opened = {
        name: grpc.aio.insecure_channel(f"127.0.0.1:{spec.grpc_port}") for name, spec in services.items()
    }
    yield opened
    for channel in opened.values():
        await channel.close()


def _hostile_requests(descriptor: Descriptor) -> Iterator[tuple[str, bytes]]:
    """(what, serialized request): each string or number field (one level of nesting) set to a hostile value,
    and each string field holding bytes that are not UTF-8."""
    request_class = GetMessageClass(descriptor)
    for field in descriptor.fields:
        targets: list[tuple[str, Descriptor, list[str]]] = [(field.name, descriptor, [])]
        if field.message_type is not None and not field.is_repeated:
            targets = [
                (f"{field.name}.{inner.name}", field.message_type, [field.name])
                for inner in field.message_type.fields
            ]
        for label, owner, path in targets:
            leaf = owner.fields_by_name[label.rsplit(".", 1)[-1]]
            if leaf.is_repeated or leaf.message_type is not None:
                continue
            values: list[Any] = []
            if leaf.type == FieldDescriptor.TYPE_STRING:
                values = HOSTILE_TEXT
            elif leaf.type in HOSTILE_NUMBERS:
                values = HOSTILE_NUMBERS[leaf.type]
            for value in values:
                request = request_class()
                target = request
                for name in path:
                    target = getattr(target, name)
                setattr(target, leaf.name, value)
                yield f"{label}={str(value)[:20]!r}", request.SerializeToString()
            if leaf.type == FieldDescriptor.TYPE_STRING and not path:
                tag = bytes([(leaf.number << 3) | 2]) if leaf.number < 16 else None
                if tag is not None:
                    yield f"{label}=<bad utf-8>", tag + b"\x02\xc3\x28"


CASES = [
    (service, method.name) for service, (_, descriptor) in SERVICES.items() for method in descriptor.methods
]


@pytest.mark.parametrize(("service", "method"), CASES, ids=[m for _, m in CASES])
async def test_hostile_field_values_get_a_clear_status_never_internal(
    channels: dict[str, grpc.aio.Channel], service: str, method: str
) -> None:
    descriptor = SERVICES[service][1]
    rpc = descriptor.methods_by_name[method]
    path = f"/{descriptor.full_name}/{method}"
    channel = channels[service]
    failures = []
    for what, payload in _hostile_requests(rpc.input_type):
        try:
            if rpc.server_streaming:
                call = channel.unary_stream(path)(payload, metadata=OPERATOR, timeout=30)
                async for _ in call:
                    pass
            else:
                await channel.unary_unary(path)(payload, metadata=OPERATOR, timeout=30)
        except grpc.aio.AioRpcError as error:
            if error.code() in NEVER:
                failures.append(f"{what}: {error.code().name} {error.details()}")
            elif error.code() == grpc.StatusCode.INVALID_ARGUMENT:
                assert error.details(), what
    assert not failures, "\n".join(failures)


async def test_hostile_http_parameters_get_a_400_with_a_message_never_a_500(
    services: dict[str, ServiceSpec],
) -> None:
    reporting = f"http://127.0.0.1:{services['reporting'].http_port}"
    guidance = f"http://127.0.0.1:{services['guidance-tts'].http_port}"
    sms = f"http://127.0.0.1:{services['sms-gateway'].http_port}"
    long = "x" * 5000
    gets = [
        f"{guidance}/audio/{long}.wav",
        f"{guidance}/audio/%00.wav",
        f"{guidance}/audio/%F0%A0%AE%B7.wav",
        f"{guidance}/audio/x.wav?format=%00",
        f"{reporting}/reports/daily.csv?from={long}&to=2026-01-01",
        f"{reporting}/reports/daily.csv?from=2026-01-01&to=2026-01-02&dialed_number={long}",
        f"{reporting}/reports/daily.csv?from=2026-01-01&to=2026-01-02&dialed_number=%00",
        f"{reporting}/reports/daily.csv?from=2026-01-01&to=2026-01-02&encoding={long}",
        f"{reporting}/reports/daily.csv?from=-0001-01-01&to=2026-01-02",
        f"{reporting}/reports/?from=2026-01-01&to=2026-01-02&dialed_number={long}",
        f"{reporting}/reports/?from=%00&to=%FF",
        f"{sms}/s/{long}",
        f"{sms}/s/%00",
        f"{sms}/sms/receipts/kannel?token=x&id=%00&type=²",
    ]
    cookie = {"Cookie": "hibiki_report_session=token-a-operator"}
    async with aiohttp.ClientSession() as session:
        for url in gets:
            headers = {"Authorization": "Bearer token-a-operator", **cookie}
            async with session.get(url, headers=headers, allow_redirects=False) as response:
                body = await response.text(errors="replace")
                assert response.status < 500, f"{url[:120]}: {response.status} {body[:200]}"
                if response.status == 400:
                    assert body.strip(), url[:120]
        for form in ({"caller_number": long, "csrf": "x"}, {"caller_number": "\x00"}):
            async with session.post(f"{reporting}/reports/trace", data=form, headers=cookie) as response:
                assert response.status < 500, (form, response.status)


async def test_an_update_without_a_mask_is_refused_and_erases_nothing(
    channels: dict[str, grpc.aio.Channel],
) -> None:
    boxes = spb_grpc.SmsBoxServiceStub(channels["sms-gateway"])
    number = f"m{RUN}"
    await boxes.CreateSmsBox(
        spb.CreateSmsBoxRequest(
            box_number=number, box_name="案内", message_text="本文", url="https://ex.jp/a"
        ),
        metadata=OPERATOR,
    )
    for mask in (None, FieldMask()):
        request = spb.UpdateSmsBoxRequest(
            sms_box=spb.SmsBox(box_number=number, message_text="新"), expected_revision=1
        )
        if mask is not None:
            request.update_mask.CopyFrom(mask)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await boxes.UpdateSmsBox(request, metadata=OPERATOR)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "update_mask" in (refused.value.details() or "")
    box = (await boxes.GetSmsBox(spb.GetSmsBoxRequest(box_number=number), metadata=OPERATOR)).sms_box
    assert (box.message_text, box.url, box.revision) == ("本文", "https://ex.jp/a", 1)


async def test_kanji_beyond_the_bmp_are_stored_synthesized_and_shown(
    channels: dict[str, grpc.aio.Channel], services: dict[str, ServiceSpec]
) -> None:
    guidance = gpb_grpc.GuidanceServiceStub(channels["guidance-tts"])
    name = f"𠮷野家-{RUN}"
    created = await guidance.CreateAudioFile(
        gpb.CreateAudioFileRequest(name=name, text="𠮷野家と𡈽屋へようこそ。"), metadata=OPERATOR
    )
    read = await guidance.GetAudioFile(gpb.GetAudioFileRequest(id=created.audio_file.id), metadata=OPERATOR)
    assert (read.audio_file.name, read.audio_file.text) == (name, "𠮷野家と𡈽屋へようこそ。")
    listed = await guidance.ListAudioFiles(gpb.ListAudioFilesRequest(name_contains="𠮷野"), metadata=OPERATOR)
    assert name in [f.name for f in listed.audio_files]
    url = f"http://127.0.0.1:{services['guidance-tts'].http_port}/audio/{created.audio_file.id}.wav"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers={"Authorization": "Bearer token-a-operator"}) as response,
    ):
        assert response.status == 200 and len(await response.read()) > 8000  # more than a second of speech

    boxes = spb_grpc.SmsBoxServiceStub(channels["sms-gateway"])
    box = await boxes.CreateSmsBox(
        spb.CreateSmsBoxRequest(box_number=f"y{RUN}", box_name="𠮷野家 予約", message_text="𠮷野家です"),
        metadata=OPERATOR,
    )
    assert (box.sms_box.box_name, box.sms_box.message_text) == ("𠮷野家 予約", "𠮷野家です")
    preview = await boxes.PreviewMessage(
        spb.PreviewMessageRequest(message_text="𠮷野家です"), metadata=OPERATOR
    )
    assert preview.characters == 6  # 𠮷 is a surrogate pair: two UCS-2 units

    routing = fpb_grpc.RoutingServiceStub(channels["routing"])
    flow = fpb.Flow(
        name="𠮷野家 代表",
        dialed_number="03-5555-" + str(int(RUN, 16) % 10000).zfill(4),
        entry_node_id="bye",
        nodes=[fpb.Node(id="bye", hangup=fpb.HangupNode())],
    )
    made = await routing.CreateFlow(fpb.CreateFlowRequest(flow=flow), metadata=OPERATOR)
    assert made.flow.name == "𠮷野家 代表"
    assert made.flow.dialed_number.startswith("+8135555")
    for written in (
        flow.dialed_number,
        "０３－５５５５－" + flow.dialed_number[-4:],
        made.flow.dialed_number,
    ):
        found = await routing.SearchFlows(fpb.SearchFlowsRequest(dialed_number=written), metadata=OPERATOR)
        assert [f.id for f in found.flows] == [made.flow.id], written

"""Security across the four running services: tenant isolation through every RPC, roles, JWTs over gRPC and
HTTP, cross-tenant events to the DLQ, and caller numbers kept out of logs and metrics.

Tenant A sets up a guidance, a published flow, an SMS box and an opt-out, and one call that gets an SMS.
Tenant B then tries to read, change, delete, export and trace all of it.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import grpc
import jwt
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hibiki.call.v1 import call_events_pb2
from hibiki.guidance.v1 import guidance_service_pb2 as gpb
from hibiki.guidance.v1 import guidance_service_pb2_grpc as gpb_grpc
from hibiki.reporting.v1 import report_service_pb2 as rpb
from hibiki.reporting.v1 import report_service_pb2_grpc as rpb_grpc
from hibiki.routing.v1 import routing_service_pb2 as fpb
from hibiki.routing.v1 import routing_service_pb2_grpc as fpb_grpc
from hibiki.sms.v1 import sms_box_service_pb2 as spb
from hibiki.sms.v1 import sms_box_service_pb2_grpc as spb_grpc
from hibiki.sms.v1 import sms_requests_pb2, sms_results_pb2
from hibiki_devstack.infra import Broker, Postgres, free_port, wait_for_port
from hibiki_devstack.stack import ServiceSpec, Stack
from hibiki_runtime.events import CALL_EVENTS, SMS_REQUESTS, SMS_RESULTS, dlq_topic, new_envelope
from hibiki_runtime.phone import written_form
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import OTHER_TENANT, TENANT, start_service
from tests.integration.kafka_io import produce, read_until
from tests.security.proto_strategies import messages

RUN = uuid.uuid4().hex[:6]
DIALED = "+81355559" + str(free_port() % 1000).zfill(3)
CALLER = "+8190770" + str(free_port() % 100000).zfill(5)  # the caller, who also receives the SMS
OPTED_OUT = "+8190771" + str(free_port() % 100000).zfill(5)
BOX = "9" + str(free_port() % 1000).zfill(3)
JWT_SECRET = "integration-secret-" + "x" * 20
JWT_ENV = {
    "HIBIKI_AUTH_JWT_ISSUER": "hibiki-test-idp",
    "HIBIKI_AUTH_JWT_AUDIENCE": "hibiki",
    "HIBIKI_AUTH_JWT_HS256_SECRETS": json.dumps({"it-1": JWT_SECRET}),
}
SERVICES = {
    "guidance-tts": "hibiki_guidance_tts",
    "routing": "hibiki_routing",
    "sms-gateway": "hibiki_sms_gateway",
    "reporting": "hibiki_reporting",
}


# Tokens are minted when pytest imports the module, long before its tests run in a whole-suite run.
def minted(tenant: str, role: str, *, expires_in: timedelta = timedelta(hours=3)) -> str:
    claims = {
        "iss": "hibiki-test-idp",
        "aud": "hibiki",
        "sub": f"{role}@{tenant}",
        "tenant_id": tenant,
        "role": role,
        "exp": datetime.now(UTC) + expires_in,
    }
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256", headers={"kid": "it-1"})


def auth(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


A_OPERATOR = auth("token-a-operator")  # static tokens file
A_VIEWER = auth("token-a-viewer")
B_OPERATOR = auth("token-b-operator")
A_VIEWER_JWT = auth(minted(TENANT, "viewer"))  # signed JWTs, accepted next to the static tokens
B_VIEWER_JWT = auth(minted(OTHER_TENANT, "viewer"))
B_PLATFORM_JWT = auth(minted(OTHER_TENANT, "platform"))
A_PLATFORM_JWT = auth(minted(TENANT, "platform"))


# ---- the running system ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Smsc:
    port: int
    scenario: Path  # also the carrier table of sms-gateway


@pytest.fixture(scope="module")
def smsc(work_dir: Path, stack: Stack) -> Smsc:
    scenario = work_dir / f"security-smsc-{RUN}.json"
    rules = [{"prefix": CALLER[:8], "carrier": "docomo", "behaviour": "deliver", "delay": 0.1}]
    scenario.write_text(json.dumps({"rules": rules}))
    port = free_port()
    running = stack.start(
        ServiceSpec(
            f"security-smsc-{RUN}",
            "hibiki_sms_gateway.smsc_simulator",
            args=["--port", str(port), "--scenario", str(scenario)],
        )
    )
    wait_for_port(port, 30, running.process)
    return Smsc(port, scenario)


@pytest.fixture(scope="module")
def services(postgres: Postgres, stack: Stack, smsc: Smsc) -> Iterator[dict[str, ServiceSpec]]:
    extra = {
        "sms-gateway": {
            "HIBIKI_SMPP_PORT": str(smsc.port),
            "HIBIKI_SMS_CARRIER_TABLE_FILE": str(smsc.scenario),
        },
    }
    # One after another in this thread: the processes die with the thread that started them (PDEATHSIG).
    specs = {
        name: start_service(stack, postgres, name, module, **JWT_ENV, **extra.get(name, {}))
        for name, module in SERVICES.items()
    }
    yield specs
    for module in SERVICES.values():
        stack.stop_module(module)


@dataclass
class Stubs:
    guidance: gpb_grpc.GuidanceServiceAsyncStub
    routing: fpb_grpc.RoutingServiceAsyncStub
    sms: spb_grpc.SmsBoxServiceAsyncStub
    reports: rpb_grpc.ReportServiceAsyncStub
    channels: dict[str, grpc.aio.Channel]


@pytest.fixture(scope="module")
async def stubs(services: dict[str, ServiceSpec]) -> AsyncIterator[Stubs]:
    channels = {
        name: grpc.aio.insecure_channel(f"127.0.0.1:{spec.grpc_port}") for name, spec in services.items()
    }
    yield Stubs(
        gpb_grpc.GuidanceServiceStub(channels["guidance-tts"]),
        fpb_grpc.RoutingServiceStub(channels["routing"]),
        spb_grpc.SmsBoxServiceStub(channels["sms-gateway"]),
        rpb_grpc.ReportServiceStub(channels["reporting"]),
        channels,
    )
    for channel in channels.values():
        await channel.close()


@dataclass(frozen=True)
class World:
    """What tenant A owns."""

    audio_file: gpb.AudioFile
    guidance: gpb.OriginalGuidance
    flow: fpb.Flow
    call_id: str
    request_id: str
    today: str


def call_event(
    tenant: str, call_id: str, event_id: str, **body: Message
) -> tuple[str, call_events_pb2.CallEvent]:
    ((name, value),) = body.items()
    event = call_events_pb2.CallEvent(call_id=call_id)
    getattr(event, name).CopyFrom(value)
    event.envelope.CopyFrom(new_envelope(tenant, value, event_id=event_id))
    return call_id, event


async def eventually(probe: Callable[[], Any], within: float = 60.0) -> Any:
    """The first truthy result of the coroutine function `probe`, polled until `within` seconds pass."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await probe()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.5)


@pytest.fixture(scope="module")
async def world(kafka: Broker, stubs: Stubs) -> World:
    audio = await stubs.guidance.CreateAudioFile(
        gpb.CreateAudioFileRequest(name=f"sec-audio-{RUN}", text="お電話ありがとうございます。"),
        metadata=A_OPERATOR,
    )
    guidance = await stubs.guidance.CreateOriginalGuidance(
        gpb.CreateOriginalGuidanceRequest(
            type=gpb.GUIDANCE_TYPE_PB_ROUTING,
            name=f"sec-guide-{RUN}",
            speech_synthesis=True,
            audio_file_id=audio.audio_file.id,
        ),
        metadata=A_OPERATOR,
    )
    await stubs.sms.CreateSmsBox(
        spb.CreateSmsBoxRequest(
            box_number=BOX, box_name=f"sec-box-{RUN}", message_text="ご案内です", url="https://example.jp/a"
        ),
        metadata=A_OPERATOR,
    )
    await stubs.sms.AddOptOut(spb.AddOptOutRequest(recipient=OPTED_OUT), metadata=A_OPERATOR)
    flow = fpb.Flow(
        name=f"sec-flow-{RUN}",
        dialed_number=DIALED,
        entry_node_id="menu",
        nodes=[
            fpb.Node(
                id="menu",
                menu=fpb.MenuNode(
                    prompt_guidance_id=guidance.original_guidance.id,
                    digit_targets={"1": "sms"},
                    fallback_node_id="bye",
                ),
            ),
            fpb.Node(id="sms", send_sms=fpb.SendSmsNode(box_number=BOX)),
            fpb.Node(id="bye", hangup=fpb.HangupNode()),
        ],
    )
    created = await stubs.routing.CreateFlow(fpb.CreateFlowRequest(flow=flow), metadata=A_OPERATOR)
    published = await stubs.routing.PublishFlow(
        fpb.PublishFlowRequest(id=created.flow.id, expected_revision=created.flow.revision),
        metadata=A_OPERATOR,
    )

    call_id = f"sec-{RUN}-call"
    await produce(
        kafka.bootstrap_servers,
        CALL_EVENTS,
        [
            call_event(
                TENANT,
                call_id,
                f"{call_id}:started",
                call_started=call_events_pb2.CallStarted(dialed_number=DIALED, caller_number=CALLER),
            ),
            call_event(
                TENANT,
                call_id,
                f"{call_id}:digits",
                digits_collected=call_events_pb2.DigitsCollected(action_id=f"{call_id}:1", digits="1"),
            ),
        ],
    )
    today = datetime.now(ZoneInfo("Asia/Tokyo")).date().isoformat()
    trace_request = rpb.TraceCallerRequest(
        caller_number=CALLER, range=rpb.DateRange(start_date=today, end_date=today)
    )

    async def delivered() -> rpb.TraceCallerResponse | None:
        trace = await stubs.reports.TraceCaller(trace_request, metadata=A_VIEWER)
        return trace if trace.verdict == rpb.TRACE_VERDICT_SMS_DELIVERED else None

    trace = await eventually(delivered, within=90)
    assert trace, "tenant A's call did not reach a delivered SMS in the report"
    (sms,) = trace.calls[0].sms
    return World(audio.audio_file, guidance.original_guidance, published.flow, call_id, sms.request_id, today)


# ---- isolation through every RPC ---------------------------------------------------------------------

Check = Callable[[Any], object]  # raises AssertionError (or fails the test) on a leak
DENIED = {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED}


@dataclass(frozen=True)
class Case:
    """One RPC called by an outsider: it must fail with one of `codes`, or succeed and pass `check`."""

    service: str
    method: str
    request: Message
    metadata: tuple[tuple[str, str], ...]
    codes: frozenset[grpc.StatusCode] = frozenset(DENIED)
    check: Check | None = None


def no_trace_of(*secrets: str) -> Check:
    def check(response: Any) -> None:
        text = str(response) if not isinstance(response, bytes) else response.decode("utf-8", "replace")
        for secret in secrets:
            assert secret not in text

    return check


def isolation_cases(w: World) -> list[Case]:
    a_ids = (w.audio_file.id, w.guidance.id, w.flow.id)
    days = rpb.DateRange(start_date=w.today, end_date=w.today)
    hidden = no_trace_of(*a_ids, DIALED, CALLER, BOX, f"sec-box-{RUN}", w.call_id)
    invalid_or_denied = frozenset(
        DENIED | {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION}
    )
    return [
        # guidance-tts
        Case(
            "guidance", "CreateAudioFile", gpb.CreateAudioFileRequest(name="x", text="テスト"), B_VIEWER_JWT
        ),
        Case("guidance", "GetAudioFile", gpb.GetAudioFileRequest(id=w.audio_file.id), B_OPERATOR),
        Case(
            "guidance",
            "ListAudioFiles",
            gpb.ListAudioFilesRequest(name_contains="sec-"),
            B_OPERATOR,
            check=hidden,
        ),
        Case(
            "guidance",
            "UpdateAudioFile",
            gpb.UpdateAudioFileRequest(id=w.audio_file.id, text="乗っ取り", expected_revision=1),
            B_OPERATOR,
        ),
        Case("guidance", "DeleteAudioFile", gpb.DeleteAudioFileRequest(id=w.audio_file.id), B_OPERATOR),
        Case(
            "guidance",
            "CreateOriginalGuidance",
            gpb.CreateOriginalGuidanceRequest(
                type=gpb.GUIDANCE_TYPE_PB_ROUTING,
                name="borrowed",
                speech_synthesis=True,
                audio_file_id=w.audio_file.id,
            ),
            B_OPERATOR,
            codes=invalid_or_denied,
        ),
        Case("guidance", "GetOriginalGuidance", gpb.GetOriginalGuidanceRequest(id=w.guidance.id), B_OPERATOR),
        Case(
            "guidance", "ListOriginalGuidances", gpb.ListOriginalGuidancesRequest(), B_OPERATOR, check=hidden
        ),
        Case(
            "guidance",
            "UpdateOriginalGuidance",
            gpb.UpdateOriginalGuidanceRequest(id=w.guidance.id, name="乗っ取り", expected_revision=1),
            B_OPERATOR,
        ),
        Case(
            "guidance",
            "DeleteOriginalGuidance",
            gpb.DeleteOriginalGuidanceRequest(id=w.guidance.id),
            B_OPERATOR,
        ),
        Case("guidance", "StreamAudio", gpb.StreamAudioRequest(guidance_id=w.guidance.id), B_OPERATOR),
        Case(
            "guidance", "StreamAudio", gpb.StreamAudioRequest(audio_file_id=w.audio_file.id), B_PLATFORM_JWT
        ),
        Case("guidance", "Preview", gpb.PreviewRequest(text="テスト"), B_VIEWER_JWT),
        Case(
            "guidance",
            "SetGuidanceUsage",
            gpb.SetGuidanceUsageRequest(user_id="routing-flow/x", version=1, guidance_ids=[w.guidance.id]),
            B_PLATFORM_JWT,
            codes=invalid_or_denied,
        ),
        # routing
        Case(
            "routing",
            "CreateFlow",
            fpb.CreateFlowRequest(flow=fpb.Flow(name="hijack", dialed_number=DIALED)),
            B_OPERATOR,
            codes=frozenset(DENIED | {grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.INVALID_ARGUMENT}),
        ),
        Case("routing", "GetFlow", fpb.GetFlowRequest(id=w.flow.id), B_OPERATOR),
        Case("routing", "GetFlow", fpb.GetFlowRequest(id=w.flow.id, version=1), B_VIEWER_JWT),
        Case(
            "routing", "SearchFlows", fpb.SearchFlowsRequest(dialed_number=DIALED), B_OPERATOR, check=hidden
        ),
        Case(
            "routing",
            "SearchFlows",
            fpb.SearchFlowsRequest(guidance_id=w.guidance.id),
            B_VIEWER_JWT,
            check=hidden,
        ),
        Case(
            "routing",
            "UpdateFlow",
            fpb.UpdateFlowRequest(
                flow=fpb.Flow(id=w.flow.id, name="乗っ取り"),
                update_mask=FieldMask(paths=["name"]),
                expected_revision=w.flow.revision,
            ),
            B_OPERATOR,
        ),
        Case("routing", "ValidateFlow", fpb.ValidateFlowRequest(id=w.flow.id), B_OPERATOR),
        Case(
            "routing",
            "PublishFlow",
            fpb.PublishFlowRequest(id=w.flow.id, expected_revision=w.flow.revision),
            B_OPERATOR,
        ),
        Case("routing", "ListFlowVersions", fpb.ListFlowVersionsRequest(id=w.flow.id), B_OPERATOR),
        Case("routing", "RollbackFlow", fpb.RollbackFlowRequest(id=w.flow.id, version=1), B_OPERATOR),
        Case("routing", "DryRunFlow", fpb.DryRunFlowRequest(id=w.flow.id, version=1), B_OPERATOR),
        Case(
            "routing",
            "AddBlockedNumber",
            fpb.AddBlockedNumberRequest(blocked_number=fpb.BlockedNumber(number=CALLER)),
            B_VIEWER_JWT,
        ),
        Case("routing", "ListBlockedNumbers", fpb.ListBlockedNumbersRequest(), B_OPERATOR, check=hidden),
        Case(
            "routing",
            "RemoveBlockedNumber",
            fpb.RemoveBlockedNumberRequest(number=CALLER),
            B_VIEWER_JWT,
        ),
        # sms-gateway
        Case(
            "sms",
            "CreateSmsBox",
            spb.CreateSmsBoxRequest(box_number=BOX, box_name="x", message_text="x"),
            B_VIEWER_JWT,
        ),
        Case("sms", "GetSmsBox", spb.GetSmsBoxRequest(box_number=BOX), B_OPERATOR),
        Case("sms", "SearchSmsBoxes", spb.SearchSmsBoxesRequest(query="sec-box"), B_OPERATOR, check=hidden),
        Case(
            "sms",
            "UpdateSmsBox",
            spb.UpdateSmsBoxRequest(
                sms_box=spb.SmsBox(box_number=BOX, message_text="乗っ取り"),
                update_mask=FieldMask(paths=["message_text"]),
                expected_revision=1,
            ),
            B_OPERATOR,
        ),
        Case(
            "sms",
            "ListSmsBoxRevisions",
            spb.ListSmsBoxRevisionsRequest(box_number=BOX),
            B_OPERATOR,
            check=hidden,
        ),
        Case("sms", "PreviewMessage", spb.PreviewMessageRequest(message_text="x"), B_PLATFORM_JWT),
        Case("sms", "AddOptOut", spb.AddOptOutRequest(recipient=CALLER), B_VIEWER_JWT),
        Case(
            "sms",
            "RemoveOptOut",
            spb.RemoveOptOutRequest(recipient=OPTED_OUT),
            B_OPERATOR,
            check=lambda response: not response.removed or pytest.fail("B removed A's opt-out"),
        ),
        # reporting
        Case("reports", "GetDailyReport", rpb.GetDailyReportRequest(range=days), B_OPERATOR, check=hidden),
        Case(
            "reports",
            "GetDailyReport",
            rpb.GetDailyReportRequest(range=days, dialed_number=DIALED),
            B_VIEWER_JWT,
            check=hidden,
        ),
        Case(
            "reports",
            "GetRouteFunnel",
            rpb.GetRouteFunnelRequest(range=days, dialed_number=DIALED),
            B_OPERATOR,
            check=lambda response: not response.rows or pytest.fail(f"funnel rows leaked: {response.rows}"),
        ),
        Case("reports", "ListCalls", rpb.ListCallsRequest(range=days), B_OPERATOR, check=hidden),
        Case(
            "reports",
            "ListCalls",
            rpb.ListCallsRequest(range=days, caller_number=CALLER),
            B_VIEWER_JWT,
            check=lambda response: not response.calls or pytest.fail("calls leaked"),
        ),
        Case(
            "reports",
            "TraceCaller",
            rpb.TraceCallerRequest(caller_number=CALLER, range=days),
            B_OPERATOR,
            check=lambda response: (
                (response.verdict == rpb.TRACE_VERDICT_NO_CALL_FOUND and not response.calls)
                or pytest.fail(f"trace leaked: {response}")
            ),
        ),
        Case("reports", "GetFinalizationStatus", rpb.GetFinalizationStatusRequest(), B_PLATFORM_JWT),
        Case(
            "reports",
            "GetLinkClickReport",
            rpb.GetLinkClickReportRequest(range=days, dialed_number=DIALED),
            B_OPERATOR,
            check=hidden,
        ),
        Case("reports", "ExportCsv", rpb.ExportCsvRequest(range=days), B_OPERATOR, check=hidden),
        Case("reports", "ExportCsv", rpb.ExportCsvRequest(range=days, dialed_number=DIALED), B_PLATFORM_JWT),
    ]


SERVICE_DESCRIPTORS = {
    "guidance": gpb.DESCRIPTOR.services_by_name["GuidanceService"],
    "routing": fpb.DESCRIPTOR.services_by_name["RoutingService"],
    "sms": spb.DESCRIPTOR.services_by_name["SmsBoxService"],
    "reports": rpb.DESCRIPTOR.services_by_name["ReportService"],
}


async def invoke(stubs: Stubs, service: str, method: str, request: Message, metadata: Any) -> Any:
    """Call any RPC; a server stream is collected (CSV chunks are joined into bytes)."""
    call = getattr(getattr(stubs, service), method)
    if SERVICE_DESCRIPTORS[service].methods_by_name[method].server_streaming:
        items = [item async for item in call(request, metadata=metadata, timeout=30)]
        if service == "reports":
            return b"".join(item.data for item in items)
        return items
    return await call(request, metadata=metadata, timeout=30)


async def test_every_rpc_is_covered_by_the_isolation_cases(world: World) -> None:
    covered = {(case.service, case.method) for case in isolation_cases(world)}
    every = {(service, method) for service, d in SERVICE_DESCRIPTORS.items() for method in d.methods_by_name}
    assert every - covered == set(), "add isolation cases for new RPCs"


async def test_another_tenant_gets_not_found_or_permission_denied_never_data(
    world: World, stubs: Stubs
) -> None:
    failures = []
    for case in isolation_cases(world):
        try:
            response = await invoke(stubs, case.service, case.method, case.request, case.metadata)
        except grpc.aio.AioRpcError as error:
            if error.code() not in case.codes:
                failures.append(f"{case.method}: {error.code().name} {error.details()}")
            continue
        if case.check is None:
            failures.append(f"{case.method}: answered instead of refusing: {str(response)[:200]}")
        else:
            try:
                case.check(response)
            except AssertionError as error:
                failures.append(f"{case.method}: {error}")
    assert failures == []

    # Tenant A's data is still there and unchanged: nothing above was an effect, only refusals.
    box = await stubs.sms.GetSmsBox(spb.GetSmsBoxRequest(box_number=BOX), metadata=A_VIEWER)
    assert (box.sms_box.message_text, box.sms_box.revision) == ("ご案内です", 1)
    flow = await stubs.routing.GetFlow(fpb.GetFlowRequest(id=world.flow.id), metadata=A_VIEWER)
    assert (flow.flow.name, flow.flow.published_version) == (world.flow.name, 1)
    guidance = await stubs.guidance.GetOriginalGuidance(
        gpb.GetOriginalGuidanceRequest(id=world.guidance.id), metadata=A_OPERATOR
    )
    assert guidance.original_guidance.revision == world.guidance.revision
    csv = await invoke(
        stubs,
        "reports",
        "ExportCsv",
        rpb.ExportCsvRequest(range=rpb.DateRange(start_date=world.today, end_date=world.today)),
        A_VIEWER_JWT,
    )
    assert written_form(DIALED).encode() in csv  # the positive control for the B export


async def test_roles_limit_what_each_principal_may_do(world: World, stubs: Stubs) -> None:
    writes = [
        ("guidance", "DeleteAudioFile", gpb.DeleteAudioFileRequest(id=world.audio_file.id)),
        (
            "routing",
            "PublishFlow",
            fpb.PublishFlowRequest(id=world.flow.id, expected_revision=world.flow.revision),
        ),
        ("routing", "RollbackFlow", fpb.RollbackFlowRequest(id=world.flow.id, version=1)),
        (
            "sms",
            "UpdateSmsBox",
            spb.UpdateSmsBoxRequest(sms_box=spb.SmsBox(box_number=BOX, url="https://evil")),
        ),
        ("sms", "RemoveOptOut", spb.RemoveOptOutRequest(recipient=OPTED_OUT)),
    ]
    for who in (A_VIEWER, A_VIEWER_JWT, A_PLATFORM_JWT):
        for service, method, request in writes:
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await invoke(stubs, service, method, request, who)
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED, method
    # Viewers read reports; the platform role (service-to-service) does not.
    days = rpb.DateRange(start_date=world.today, end_date=world.today)
    assert (await stubs.reports.ListCalls(rpb.ListCallsRequest(range=days), metadata=A_VIEWER_JWT)).calls
    with pytest.raises(grpc.aio.AioRpcError) as platform:
        await stubs.reports.ListCalls(rpb.ListCallsRequest(range=days), metadata=A_PLATFORM_JWT)
    assert platform.value.code() == grpc.StatusCode.PERMISSION_DENIED

    expired = auth(minted(TENANT, "operator", expires_in=timedelta(minutes=-5)))
    forged = auth(jwt.encode({"tenant_id": TENANT, "role": "operator"}, "y" * 40, algorithm="HS256"))
    for metadata in ((), expired, forged, auth("token-a-operatorX")):
        for service in SERVICE_DESCRIPTORS:
            method = next(iter(SERVICE_DESCRIPTORS[service].methods_by_name))
            request_type = getattr(
                {"guidance": gpb, "routing": fpb, "sms": spb, "reports": rpb}[service],
                SERVICE_DESCRIPTORS[service].methods_by_name[method].input_type.name,
            )
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await invoke(stubs, service, method, request_type(), metadata)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    for channel in stubs.channels.values():  # health stays open for probes
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_http_routes_take_the_same_tokens_and_tenants(
    world: World, services: dict[str, ServiceSpec]
) -> None:
    reporting, guidance = services["reporting"].http_port, services["guidance-tts"].http_port
    csv_url = f"http://127.0.0.1:{reporting}/reports/daily.csv?from={world.today}&to={world.today}"
    audio_url = f"http://127.0.0.1:{guidance}/audio/{world.guidance.id}.wav"

    async def get(url: str, metadata: Any) -> tuple[int, bytes]:
        headers = {"Authorization": metadata[0][1]} if metadata else {}
        async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
            return response.status, await response.read()

    status, own = await get(csv_url, A_VIEWER_JWT)
    assert status == 200 and written_form(DIALED).encode() in own
    status, other = await get(csv_url, B_VIEWER_JWT)
    assert status == 200 and written_form(DIALED).encode() not in other
    assert (await get(csv_url, B_PLATFORM_JWT))[0] == 403
    assert (await get(csv_url, ()))[0] == 401
    # The report page authenticates its session cookie (a bearer token) with the same authenticator.
    page_url = f"http://127.0.0.1:{reporting}/reports/?from={world.today}&to={world.today}"
    pages = {}
    for name, token in (("a", A_VIEWER_JWT), ("b", B_VIEWER_JWT)):
        cookie = {"Cookie": f"hibiki_report_session={token[0][1].removeprefix('Bearer ')}"}
        async with aiohttp.ClientSession() as session, session.get(page_url, headers=cookie) as response:
            assert response.status == 200, name
            pages[name] = re.sub(r"\D", "", await response.text())
    national = "0" + DIALED.removeprefix("+81")
    assert national in pages["a"] or DIALED[1:] in pages["a"]
    assert national not in pages["b"] and DIALED[1:] not in pages["b"]
    assert (await get(audio_url, A_PLATFORM_JWT))[0] == 200
    assert (await get(audio_url, B_OPERATOR))[0] == 404
    assert (await get(audio_url, B_VIEWER_JWT))[0] == 403


# ---- events of one tenant that touch another's ---------------------------------------------------------


def dlq_reasons(records: list[Any], key: str) -> set[tuple[str, str]]:
    """(reason, consumer group) of the DLQ records with `key`."""
    found = set()
    for record in records:
        if record.key == key.encode():
            headers = {name: value.decode() for name, value in record.headers or ()}
            found.add((headers.get("dlq-reason", ""), headers.get("dlq-consumer-group", "")))
    return found


async def test_events_that_touch_another_tenants_number_call_or_request_go_to_the_dlq(
    kafka: Broker, world: World
) -> None:
    bootstrap = kafka.bootstrap_servers
    intruder_call = f"sec-{RUN}-intruder"
    await produce(
        bootstrap,
        CALL_EVENTS,
        [
            # B claims a call to A's dialed number, and B answers A's running call.
            call_event(
                OTHER_TENANT,
                intruder_call,
                f"{intruder_call}:started",
                call_started=call_events_pb2.CallStarted(dialed_number=DIALED, caller_number=CALLER),
            ),
            call_event(
                OTHER_TENANT,
                world.call_id,
                f"{world.call_id}:b-digits",
                digits_collected=call_events_pb2.DigitsCollected(action_id=f"{world.call_id}:1", digits="1"),
            ),
        ],
    )
    forged_result = sms_results_pb2.SmsResult(
        request_id=world.request_id, sms_undelivered=sms_results_pb2.SmsUndelivered(reason="UNDELIV")
    )
    forged_result.envelope.CopyFrom(
        new_envelope(OTHER_TENANT, forged_result.sms_undelivered, event_id=f"{world.request_id}:b-result")
    )
    await produce(bootstrap, SMS_RESULTS, [(world.request_id, forged_result)])
    reused = sms_requests_pb2.SmsRequest(
        request_id=world.request_id,
        sms_requested=sms_requests_pb2.SmsRequested(call_id=world.call_id, box_number=BOX, recipient=CALLER),
    )
    reused.envelope.CopyFrom(
        new_envelope(OTHER_TENANT, reused.sms_requested, event_id=f"{world.request_id}:b-req")
    )
    # B names A's SMS box in a request of its own: the box does not exist in B's tenant.
    borrowed = sms_requests_pb2.SmsRequest(
        request_id=f"{intruder_call}:2",
        sms_requested=sms_requests_pb2.SmsRequested(call_id=intruder_call, box_number=BOX, recipient=CALLER),
    )
    borrowed.envelope.CopyFrom(
        new_envelope(OTHER_TENANT, borrowed.sms_requested, event_id=f"{intruder_call}:2")
    )
    await produce(bootstrap, SMS_REQUESTS, [(world.request_id, reused), (borrowed.request_id, borrowed)])

    call_dlq = await read_until(
        bootstrap,
        dlq_topic(CALL_EVENTS),
        lambda rs: len(dlq_reasons(rs, intruder_call)) >= 1 and len(dlq_reasons(rs, world.call_id)) >= 2,
        within_seconds=60,
    )
    assert ("cross_tenant", "hibiki-routing") in dlq_reasons(call_dlq, intruder_call)
    assert {("cross_tenant", "hibiki-routing"), ("cross_tenant", "hibiki-reporting")} <= dlq_reasons(
        call_dlq, world.call_id
    )
    results_dlq = await read_until(
        bootstrap,
        dlq_topic(SMS_RESULTS),
        lambda rs: bool(dlq_reasons(rs, world.request_id)),
        within_seconds=60,
    )
    assert ("cross_tenant", "hibiki-reporting") in dlq_reasons(results_dlq, world.request_id)
    requests_dlq = await read_until(
        bootstrap,
        dlq_topic(SMS_REQUESTS),
        lambda rs: len(dlq_reasons(rs, world.request_id)) >= 2,
        within_seconds=60,
    )
    assert {("cross_tenant", "hibiki-sms-gateway"), ("cross_tenant", "hibiki-reporting")} <= dlq_reasons(
        requests_dlq, world.request_id
    )

    def borrowed_result(records: list[Any]) -> list[sms_results_pb2.SmsResult]:
        results = [
            sms_results_pb2.SmsResult.FromString(r.value)
            for r in records
            if r.key == borrowed.request_id.encode()
        ]
        return [r for r in results if r.request_id == borrowed.request_id]

    results = borrowed_result(
        await read_until(bootstrap, SMS_RESULTS, lambda rs: bool(borrowed_result(rs)), within_seconds=60)
    )
    assert [(r.envelope.tenant_id, r.WhichOneof("body"), r.sms_rejected.reason) for r in results] == [
        (OTHER_TENANT, "sms_rejected", sms_results_pb2.REJECT_REASON_UNKNOWN_BOX)
    ]


# ---- personal data -----------------------------------------------------------------------------------


def spellings(number: str) -> list[str]:
    """How a Japanese number can be written: E.164, national, with and without separators."""
    national = "0" + number.removeprefix("+81")
    return [number, number.removeprefix("+"), national, f"{national[:3]}-{national[3:7]}-{national[7:]}"]


async def test_caller_numbers_never_appear_in_logs_or_metrics(
    world: World, stack: Stack, services: dict[str, ServiceSpec]
) -> None:
    leaks = []
    for name in SERVICES:
        log = (stack.log_dir / f"{name}.log").read_text(encoding="utf-8", errors="replace")
        assert log, f"{name} wrote no log"
        leaks += [f"{name}.log: {s}" for s in spellings(CALLER) + spellings(OPTED_OUT) if s in log]
        url = f"http://127.0.0.1:{services[name].http_port}/metrics"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            metrics = await response.text()
        digits = re.sub(r"\D", "", CALLER)[-9:]
        leaks += [f"{name} /metrics" for line in metrics.splitlines() if digits in line]
    assert leaks == []  # `world` got an SMS delivered to CALLER, so every service has handled the number


# ---- hostile requests ----------------------------------------------------------------------------------

FUZZ_TENANT = "tenant-fuzz"  # its own tenant: random writes never touch the data of the tests above
FUZZ_PRINCIPALS = [auth(minted(FUZZ_TENANT, role)) for role in ("operator", "viewer", "platform")]
CLEAR_ERRORS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
METHODS = [(service, method) for service, d in SERVICE_DESCRIPTORS.items() for method in d.methods_by_name]


@pytest.mark.parametrize(("service", "method"), METHODS, ids=[m for _, m in METHODS])
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
async def test_random_field_values_get_a_clear_status_never_internal(
    stubs: Stubs, service: str, method: str, data: st.DataObject
) -> None:
    request = data.draw(messages(SERVICE_DESCRIPTORS[service].methods_by_name[method].input_type))
    try:
        await invoke(stubs, service, method, request, data.draw(st.sampled_from(FUZZ_PRINCIPALS)))
    except grpc.aio.AioRpcError as error:
        assert error.code() in CLEAR_ERRORS, f"{method}: {error.code().name} {error.details()}"


async def test_limits_on_pages_ranges_texts_and_message_sizes(
    stubs: Stubs, services: dict[str, ServiceSpec]
) -> None:
    operator = FUZZ_PRINCIPALS[0]
    days = rpb.DateRange(start_date="2020-01-01", end_date="2026-12-31")
    too_much = [
        ("reports", "GetDailyReport", rpb.GetDailyReportRequest(range=days)),
        (
            "reports",
            "ListCalls",
            rpb.ListCallsRequest(
                range=rpb.DateRange(start_date="2026-01-01", end_date="2026-01-02"), page_size=2**32 - 1
            ),
        ),
        ("routing", "SearchFlows", fpb.SearchFlowsRequest(page_size=1_000_000)),
        ("guidance", "CreateAudioFile", gpb.CreateAudioFileRequest(name="長すぎ", text="あ" * 1001)),
        ("guidance", "CreateAudioFile", gpb.CreateAudioFileRequest(name="n" * 65, text="こんにちは")),
        (
            "sms",
            "CreateSmsBox",
            spb.CreateSmsBoxRequest(box_number="1", box_name="x", message_text="あ" * 5000),
        ),
    ]
    for service, method, request in too_much:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await invoke(stubs, service, method, request, operator)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
    # Pages are capped where they are not refused.
    listed = await stubs.guidance.ListAudioFiles(
        gpb.ListAudioFilesRequest(page_size=2**32 - 1), metadata=operator
    )
    assert len(listed.audio_files) <= 200
    with pytest.raises(grpc.aio.AioRpcError) as oversized:
        await stubs.sms.PreviewMessage(
            spb.PreviewMessageRequest(message_text="x" * (9 * 1024 * 1024)), metadata=operator
        )
    assert oversized.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    url = (
        f"http://127.0.0.1:{services['reporting'].http_port}/reports/daily.csv?from=2020-01-01&to=2026-12-31"
    )
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers={"Authorization": operator[0][1]}) as response,
    ):
        assert response.status == 400 and "400 days" in await response.text()

"""ValidateFlow and PublishFlow (and RollbackFlow, DryRunFlow) run one check: bounds, guidances, SMS boxes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Set
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hibiki.sms.v1 import sms_box_service_pb2 as sms_pb
from hibiki.sms.v1 import sms_box_service_pb2_grpc as sms_grpc
from hibiki_routing.adapters.sms_boxes import GrpcSmsBoxes, SmsServiceUnavailable
from hibiki_routing.domain.editing import Flow
from hibiki_routing.domain.flows import FlowDefinition, MenuNode, MobileNumberCapture, Node, SendSmsNode
from hibiki_routing.domain.validation import check_shape, find_problems
from hibiki_routing.service_layer.flows import FlowService
from hibiki_routing.settings import RoutingSettings
from hibiki_runtime.auth import StaticTokenAuthenticator, current_principal
from hibiki_runtime.errors import FailedPrecondition, InvalidArgument, NotFound
from hibiki_runtime.grpc_server import create_server
from hibiki_runtime.metrics import RuntimeMetrics
from prometheus_client import CollectorRegistry

from services.routing.tests.routing_db import migrated_database
from services.routing.tests.routing_flows import DIALED, sample_flow

TENANT = "tenant-a"
SAMPLE_GUIDANCES = {"g-menu", "g-sms-sent", "g-transfer", "g-bye", "g-fallback", "g-closed"}
AT = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


@dataclass
class Directory:
    """Guidances or SMS boxes a tenant has (what guidance-tts / sms-gateway would answer)."""

    known: set[str]
    asked: list[Set[str]] = field(default_factory=list)

    async def existing(self, tenant_id: str, ids: Set[str]) -> set[str]:
        self.asked.append(ids)
        return set(ids) & self.known if tenant_id == TENANT else set()


def menu_node(**changes: Any) -> Node:
    base = MenuNode("g-menu", {"1": "sms", "2": "transfer", "9": "bye"}, fallback_node_id="fallback")
    return Node("menu", replace(base, **changes), "メインメニュー")


def with_node(definition: FlowDefinition, node: Node) -> FlowDefinition:
    return replace(definition, nodes=tuple(node if n.id == node.id else n for n in definition.nodes))


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[Any]:
    engine, sessions = await migrated_database(tmp_path)
    yield sessions
    await engine.dispose()


async def test_a_deleted_guidance_is_a_problem_for_validate_publish_rollback_and_dry_run(
    sessions: Any,
) -> None:
    guidances = Directory(set(SAMPLE_GUIDANCES))
    service = FlowService(sessions, guidances=guidances, sms_boxes=Directory({"100"}))
    flow = await service.create(Flow("", TENANT, "代表番号", DIALED, sample_flow(entry="hours")))
    assert (await service.check(TENANT, flow.id)).problems == []
    await service.publish(TENANT, flow.id, 0, "a")

    guidances.known.discard("g-closed")  # deleted in guidance-tts meanwhile

    check = await service.check(TENANT, flow.id)
    assert [(p.node_id, p.field, p.description) for p in check.problems] == [
        ("closed", "announcement.guidance_id", "unknown guidance 'g-closed' (deleted, or never created)")
    ]
    assert [p.node_id for p in await service.validate(TENANT, flow.id)] == ["closed"]
    for refused in (
        service.publish(TENANT, flow.id, 0, "a"),
        service.rollback(TENANT, flow.id, 1, "a"),
        service.dry_run(TENANT, flow.id, 0, [], "", True, AT),
        service.dry_run(TENANT, flow.id, 1, [], "", True, AT),
    ):
        with pytest.raises(FailedPrecondition, match="unknown guidance 'g-closed'"):
            await refused
    assert len((await service.versions(TENANT, flow.id))[1]) == 1


async def test_an_unknown_sms_box_is_a_problem_for_validate_and_publish(sessions: Any) -> None:
    service = FlowService(sessions, guidances=Directory(set(SAMPLE_GUIDANCES)), sms_boxes=Directory({"100"}))
    definition = sample_flow(entry="hours")
    definition = replace(
        definition,
        nodes=(
            *(n for n in definition.nodes if n.id != "sms"),
            Node(
                "sms",
                SendSmsNode(
                    "999",
                    announcement_guidance_id="g-sms-sent",
                    mobile_number_capture=MobileNumberCapture("g-menu"),
                ),
            ),
        ),
    )
    flow = await service.create(Flow("", TENANT, "代表番号", DIALED, definition))

    problems = (await service.check(TENANT, flow.id)).problems
    assert [(p.node_id, p.field, p.description) for p in problems] == [
        ("sms", "send_sms.box_number", "unknown SMS box '999'")
    ]
    with pytest.raises(FailedPrecondition, match="unknown SMS box '999'"):
        await service.publish(TENANT, flow.id, 0, "a")


async def test_unchecked_references_are_warnings_not_problems(sessions: Any) -> None:
    service = FlowService(sessions)
    flow = await service.create(Flow("", TENANT, "代表番号", DIALED, sample_flow(entry="hours")))

    check = await service.check(TENANT, flow.id)

    assert check.problems == []
    assert [(w.field, w.description) for w in check.warnings] == [
        ("guidances", "not checked: routing has no guidance-tts address (HIBIKI_GUIDANCE_ADDRESS)"),
        ("sms_boxes", "not checked: routing has no sms-gateway address (HIBIKI_SMS_ADDRESS)"),
    ]
    await service.publish(TENANT, flow.id, 0, "a")


OUT_OF_BOUNDS = {
    "1000-day first-digit timeout": (
        menu_node(first_digit_timeout=timedelta(days=1000)),
        "menu.first_digit_timeout",
        "must be 1 to 60 seconds",
    ),
    "sub-second inter-digit timeout": (
        menu_node(inter_digit_timeout=timedelta(milliseconds=500)),
        "menu.inter_digit_timeout",
        "must be 1 to 60 seconds",
    ),
    "11 invalid attempts": (
        menu_node(max_invalid_attempts=11),
        "menu.max_invalid_attempts",
        "must be 1 to 10",
    ),
    "0 timeout attempts": (menu_node(max_timeout_attempts=0), "menu.max_timeout_attempts", "must be 1 to 10"),
    "33 digits": (menu_node(max_digits=33), "menu.max_digits", "must be 1 to 32"),
    "capture with 1000 attempts": (
        Node(
            "sms",
            SendSmsNode(
                "100", mobile_number_capture=MobileNumberCapture("g-menu", max_invalid_attempts=1000)
            ),
        ),
        "send_sms.mobile_number_capture.max_invalid_attempts",
        "must be 1 to 10",
    ),
}


@pytest.mark.parametrize(
    ("node", "field_path", "description"), OUT_OF_BOUNDS.values(), ids=OUT_OF_BOUNDS.keys()
)
def test_timers_and_counts_out_of_bounds_are_refused_on_save_and_reported_by_validate(
    node: Node, field_path: str, description: str
) -> None:
    definition = with_node(sample_flow(entry="hours"), node)
    index = next(i for i, n in enumerate(definition.nodes) if n.id == node.id)

    with pytest.raises(InvalidArgument) as raised:
        check_shape(definition)
    assert (f"flow.nodes[{index}].{field_path}", description) in [
        (v.field, v.description) for v in raised.value.violations
    ]
    # A draft stored before the bounds existed is reported, so it cannot be published either.
    assert (node.id, field_path, description) in [
        (p.node_id, p.field, p.description) for p in find_problems(definition)
    ]


async def test_a_stored_draft_out_of_bounds_cannot_be_published(sessions: Any) -> None:
    from hibiki_routing.adapters.flow_repository import FlowRepository

    service = FlowService(sessions)
    flow = await service.create(Flow("", TENANT, "代表番号", DIALED, sample_flow(entry="hours")))
    async with sessions() as session, session.begin():  # written before the bounds were enforced
        slow = with_node(flow.definition, menu_node(first_digit_timeout=timedelta(days=1000)))
        await FlowRepository(session).save(replace(flow, definition=slow, revision=2), flow.revision)

    assert [p.field for p in await service.validate(TENANT, flow.id)] == ["menu.first_digit_timeout"]
    with pytest.raises(FailedPrecondition, match="first_digit_timeout: must be 1 to 60 seconds"):
        await service.publish(TENANT, flow.id, 0, "a")


class FakeSmsBoxService(sms_grpc.SmsBoxServiceServicer):
    async def GetSmsBox(self, request: sms_pb.GetSmsBoxRequest, context: Any) -> sms_pb.GetSmsBoxResponse:
        if current_principal().tenant_id != TENANT or request.box_number != "100":
            raise NotFound(f"no SMS box {request.box_number}")
        return sms_pb.GetSmsBoxResponse(sms_box=sms_pb.SmsBox(box_number="100", box_name="資料請求"))


async def test_grpc_sms_boxes_asks_sms_gateway_with_the_tenants_platform_token() -> None:
    server, port, _ = create_server(
        "127.0.0.1:0",
        registrars=[
            (
                "hibiki.sms.v1.SmsBoxService",
                lambda s: sms_grpc.add_SmsBoxServiceServicer_to_server(FakeSmsBoxService(), s),
            )
        ],
        authenticator=StaticTokenAuthenticator({"platform-a": {"tenant_id": TENANT, "role": "platform"}}),
        metrics=RuntimeMetrics("fake_sms", CollectorRegistry()),
    )
    await server.start()
    boxes = GrpcSmsBoxes(f"127.0.0.1:{port}", {TENANT: "platform-a"})
    try:
        assert await boxes.existing(TENANT, {"100", "999"}) == {"100"}
        with pytest.raises(FailedPrecondition, match="no sms-gateway token for tenant tenant-b"):
            await boxes.existing("tenant-b", {"100"})
    finally:
        await boxes.close()
        await server.stop(None)

    nowhere = GrpcSmsBoxes("127.0.0.1:1", {TENANT: "platform-a"}, timeout_seconds=1)
    with pytest.raises(SmsServiceUnavailable):
        await nowhere.existing(TENANT, {"100"})
    await nowhere.close()


def test_the_sms_gateway_address_and_tokens_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIBIKI_SMS_ADDRESS", "sms-gateway:50053")
    monkeypatch.setenv("HIBIKI_SMS_TOKENS", '{"tenant-a": "t"}')
    settings = RoutingSettings()
    assert (settings.sms_address, settings.sms_tokens) == ("sms-gateway:50053", {"tenant-a": "t"})


async def test_validate_flow_answers_problems_and_warnings_apart(sessions: Any) -> None:
    from hibiki.routing.v1 import routing_service_pb2 as routing_pb
    from hibiki_routing.entrypoints.grpc_api import RoutingServicer
    from hibiki_routing.service_layer.blocklist import BlocklistService
    from hibiki_runtime.auth import Principal, Role, reset_current_principal, set_current_principal

    unchecked = FlowService(sessions)
    checked = FlowService(sessions, guidances=Directory({"g-menu"}), sms_boxes=Directory({"100"}))
    flow = await unchecked.create(Flow("", TENANT, "代表番号", DIALED, sample_flow(entry="hours")))
    token = set_current_principal(Principal(TENANT, Role.OPERATOR))
    try:
        request = routing_pb.ValidateFlowRequest(id=flow.id)
        warned = await RoutingServicer(unchecked, BlocklistService(sessions)).ValidateFlow(request, None)
        refused = await RoutingServicer(checked, BlocklistService(sessions)).ValidateFlow(request, None)
    finally:
        reset_current_principal(token)

    assert warned.valid and not warned.problems
    assert [w.field for w in warned.warnings] == ["guidances", "sms_boxes"]
    assert not refused.valid and not refused.warnings
    assert {p.field for p in refused.problems} >= {
        "announcement.guidance_id",
        "hangup.announcement_guidance_id",
    }

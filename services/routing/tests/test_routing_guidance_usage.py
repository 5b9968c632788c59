"""Publishing records the version's guidances in guidance-tts first; a refusal publishes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from hibiki.guidance.v1 import guidance_service_pb2 as pb
from hibiki.guidance.v1 import guidance_service_pb2_grpc as pb_grpc
from hibiki_routing.adapters.guidance_usage import GrpcGuidanceUsage, GuidanceServiceUnavailable
from hibiki_routing.domain.editing import Flow
from hibiki_routing.service_layer.flows import FlowService
from hibiki_runtime.auth import StaticTokenAuthenticator, current_principal
from hibiki_runtime.errors import FailedPrecondition, FieldViolation, InvalidArgument
from hibiki_runtime.grpc_server import create_server, grpc_status_for
from hibiki_runtime.metrics import RuntimeMetrics
from prometheus_client import CollectorRegistry

from services.routing.tests.routing_db import migrated_database
from services.routing.tests.routing_flows import DIALED, sample_flow

TENANT = "tenant-a"
SAMPLE_GUIDANCES = {"g-menu", "g-sms-sent", "g-transfer", "g-bye", "g-fallback", "g-closed"}


@dataclass
class RecordingUsage:
    refuse: bool = False
    calls: list[tuple[str, int, Set[str]]] = field(default_factory=list)

    async def record_version(
        self,
        flow: Flow,
        version: int,
        guidance_ids: Set[str],
        content_revisions: Mapping[str, int] | None = None,
        *,
        skip_unknown: bool = False,
    ) -> dict[str, int]:
        if self.refuse:
            raise FailedPrecondition("guidance-tts refused the flow's guidances: no g-menu")
        self.calls.append((flow.id, version, guidance_ids))
        return {}

    async def record_draft(self, flow: Flow, guidance_ids: Set[str], *, settled: bool) -> None:
        pass


async def test_publish_and_rollback_record_usage_before_the_version_exists(tmp_path: Path) -> None:
    engine, sessions = await migrated_database(tmp_path)
    usage = RecordingUsage()
    service = FlowService(sessions, usage)
    flow = await service.create(Flow("", TENANT, "代表番号", DIALED, sample_flow(entry="hours")))

    await service.publish(TENANT, flow.id, 0, "a")
    await service.rollback(TENANT, flow.id, 1, "a")
    usage.refuse = True
    with pytest.raises(FailedPrecondition):
        await service.publish(TENANT, flow.id, 0, "a")

    assert usage.calls == [(flow.id, 1, SAMPLE_GUIDANCES), (flow.id, 2, SAMPLE_GUIDANCES)]
    _, versions = await service.versions(TENANT, flow.id)
    assert [v.version for v in versions] == [1, 2]
    assert (await service.get(TENANT, flow.id)).published_version == 2
    await engine.dispose()


class FakeGuidanceService(pb_grpc.GuidanceServiceServicer):
    """Knows some guidances of tenant-a; refuses others like guidance-tts does."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, pb.SetGuidanceUsageRequest]] = []

    async def SetGuidanceUsage(self, request: pb.SetGuidanceUsageRequest, context: Any) -> Any:
        tenant = current_principal().tenant_id
        unknown = [
            FieldViolation(f"guidance_ids[{i}]", f"no original guidance {g!r} in this tenant")
            for i, g in enumerate(request.guidance_ids)
            if g not in SAMPLE_GUIDANCES
        ]
        if unknown:
            raise InvalidArgument(*unknown)
        self.requests.append((tenant, request))
        return pb.SetGuidanceUsageResponse(applied=True)


@pytest.fixture
async def guidance_tts() -> AsyncIterator[tuple[FakeGuidanceService, str]]:
    fake = FakeGuidanceService()
    server, port, _ = create_server(
        "127.0.0.1:0",
        registrars=[
            (
                "hibiki.guidance.v1.GuidanceService",
                lambda s: pb_grpc.add_GuidanceServiceServicer_to_server(fake, s),
            )
        ],
        authenticator=StaticTokenAuthenticator({"platform-a": {"tenant_id": TENANT, "role": "platform"}}),
        metrics=RuntimeMetrics("fake_guidance", CollectorRegistry()),
    )
    await server.start()
    yield fake, f"127.0.0.1:{port}"
    await server.stop(None)


def flow(tenant: str = TENANT) -> Flow:
    return Flow("f-1", tenant, "代表番号", DIALED, sample_flow(entry="hours"))


async def test_grpc_usage_sends_the_flow_as_a_user_with_the_tenants_token(
    guidance_tts: tuple[FakeGuidanceService, str],
) -> None:
    fake, address = guidance_tts
    usage = GrpcGuidanceUsage(address, {TENANT: "platform-a"})

    await usage.record_version(flow(), 3, {"g-menu", "g-bye"})
    await usage.close()

    ((tenant, request),) = fake.requests
    assert tenant == TENANT
    assert (request.user_id, request.display_name, request.version) == (
        "routing-flow/f-1/v3",
        "代表番号 v3",
        3,
    )
    assert list(request.guidance_ids) == ["g-bye", "g-menu"]
    assert request.pin_content and not request.skip_unknown


async def test_grpc_usage_turns_refusals_and_outages_into_clear_errors(
    guidance_tts: tuple[FakeGuidanceService, str],
) -> None:
    _, address = guidance_tts
    usage = GrpcGuidanceUsage(address, {TENANT: "platform-a"}, timeout_seconds=2)
    with pytest.raises(FailedPrecondition, match="no original guidance 'g-gone'"):
        await usage.record_version(flow(), 1, {"g-menu", "g-gone"})
    with pytest.raises(FailedPrecondition, match="no guidance-tts token for tenant tenant-b"):
        await usage.record_version(flow("tenant-b"), 1, {"g-menu"})
    await usage.close()

    nowhere = GrpcGuidanceUsage("127.0.0.1:1", {TENANT: "platform-a"}, timeout_seconds=1)
    with pytest.raises(GuidanceServiceUnavailable):
        await nowhere.record_version(flow(), 1, {"g-menu"})
    await nowhere.close()
    assert grpc_status_for(GuidanceServiceUnavailable("x")).code == grpc.StatusCode.UNAVAILABLE

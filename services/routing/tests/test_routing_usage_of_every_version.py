"""guidance-tts knows every guidance the draft and each published version play, and what each one heard."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hibiki.guidance.v1 import guidance_service_pb2 as pb
from hibiki.guidance.v1 import guidance_service_pb2_grpc as pb_grpc
from hibiki_routing.adapters.guidance_usage import GrpcGuidanceUsage
from hibiki_routing.adapters.metrics import RoutingMetrics
from hibiki_routing.domain.calls import PlayAndCollect
from hibiki_routing.domain.editing import Flow
from hibiki_routing.domain.flows import AnnouncementNode, Node
from hibiki_routing.service_layer.call_events import CallEventsHandler
from hibiki_routing.service_layer.flows import FlowService
from hibiki_runtime.auth import StaticTokenAuthenticator
from hibiki_runtime.errors import FailedPrecondition, FieldViolation, InvalidArgument
from hibiki_runtime.grpc_server import create_server
from hibiki_runtime.metrics import RuntimeMetrics
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.routing.tests.routing_db import call_event, deliveries, queued
from services.routing.tests.routing_flows import CALLER, DIALED, sample_flow

TENANT = "tenant-a"
GUIDANCES = {"g-menu", "g-sms-sent", "g-transfer", "g-bye", "g-fallback", "g-closed", "g-new"}
AT = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Tokyo


@dataclass
class User:
    display_name: str
    version: int
    guidance_ids: set[str]
    pins: dict[str, int]


@dataclass
class FakeGuidanceTts(pb_grpc.GuidanceServiceServicer):
    """guidance-tts as routing sees it: users with monotonic versions, content revisions, delete refusals."""

    users: dict[str, User] = field(default_factory=dict)
    content: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GUIDANCES, 1))
    versions_seen: dict[str, list[int]] = field(default_factory=dict)

    async def SetGuidanceUsage(self, request: pb.SetGuidanceUsageRequest, context: Any) -> Any:
        ids = [g for g in request.guidance_ids if g in self.content or not request.skip_unknown]
        unknown = [
            FieldViolation("guidance_ids", f"no original guidance {g!r}")
            for g in ids
            if g not in self.content
        ]
        if unknown:
            raise InvalidArgument(*unknown)
        self.versions_seen.setdefault(request.user_id, []).append(request.version)
        known = self.users.get(request.user_id)
        if known is not None and known.version > request.version:
            return pb.SetGuidanceUsageResponse(applied=False)
        pins = (
            {g: request.content_revisions.get(g, self.content[g]) for g in ids} if request.pin_content else {}
        )
        self.users[request.user_id] = User(request.display_name, request.version, set(ids), pins)
        return pb.SetGuidanceUsageResponse(applied=True, content_revisions=pins)

    def refusal_to_delete(self, guidance_id: str) -> list[str]:
        """Who guidance-tts names when asked to delete the guidance (empty: it may be deleted)."""
        return sorted(u.display_name for u in self.users.values() if guidance_id in u.guidance_ids)


@pytest.fixture
async def guidance_tts() -> AsyncIterator[tuple[FakeGuidanceTts, GrpcGuidanceUsage]]:
    fake = FakeGuidanceTts()
    server, port, _ = create_server(
        "127.0.0.1:0",
        registrars=[
            (
                "hibiki.guidance.v1.GuidanceService",
                lambda s: pb_grpc.add_GuidanceServiceServicer_to_server(fake, s),
            )
        ],
        authenticator=StaticTokenAuthenticator({"platform-a": {"tenant_id": TENANT, "role": "platform"}}),
        metrics=RuntimeMetrics("fake_guidance_usage", CollectorRegistry()),
    )
    await server.start()
    usage = GrpcGuidanceUsage(f"127.0.0.1:{port}", {TENANT: "platform-a"})
    yield fake, usage
    await usage.close()
    await server.stop(None)


def with_closed_announcement(flow: Flow, guidance_id: str) -> Flow:
    nodes = tuple(
        Node("closed", AnnouncementNode(guidance_id)) if n.id == "closed" else n
        for n in flow.definition.nodes
    )
    return replace(flow, definition=replace(flow.definition, nodes=nodes))


async def test_the_draft_and_every_retained_version_keep_their_guidances(
    sessions: async_sessionmaker[AsyncSession], guidance_tts: tuple[FakeGuidanceTts, GrpcGuidanceUsage]
) -> None:
    fake, usage = guidance_tts
    service = FlowService(sessions, usage)
    flow = await service.create(Flow("", TENANT, "代表番号", DIALED, sample_flow(entry="hours")))
    assert fake.refusal_to_delete("g-closed") == ["代表番号 (draft)"]

    v1 = await service.publish(TENANT, flow.id, 0, "a")
    assert fake.refusal_to_delete("g-closed") == ["代表番号 (draft)", "代表番号 v1"]

    # The draft stops playing g-closed: v1 still does; a guidance the draft names but that does not exist
    # yet does not stop the save.
    changed = await service.update(TENANT, with_closed_announcement(v1, "g-new"), ["nodes"], v1.revision)
    assert fake.refusal_to_delete("g-closed") == ["代表番号 v1"]
    assert fake.refusal_to_delete("g-new") == ["代表番号 (draft)"]
    draft = await service.update(
        TENANT, with_closed_announcement(changed, "g-not-yet"), ["nodes"], changed.revision
    )
    assert fake.refusal_to_delete("g-new") == []

    draft = await service.update(TENANT, with_closed_announcement(draft, "g-new"), ["nodes"], draft.revision)
    await service.publish(TENANT, flow.id, 0, "a")  # v2: g-new, not g-closed
    assert fake.refusal_to_delete("g-closed") == ["代表番号 v1"]

    await service.rollback(TENANT, flow.id, 1, "a")  # v3 = v1, and the draft too
    assert fake.refusal_to_delete("g-closed") == ["代表番号 (draft)", "代表番号 v1", "代表番号 v3"]
    assert fake.refusal_to_delete("g-new") == ["代表番号 v2"]

    # The draft's record only ever moves forward, whatever the order of revisions and versions.
    draft_versions = fake.versions_seen[f"routing-flow/{flow.id}"]
    assert draft_versions == sorted(draft_versions) and len(set(draft_versions)) == len(draft_versions)


async def test_a_version_plays_the_content_it_was_published_with(
    sessions: async_sessionmaker[AsyncSession], guidance_tts: tuple[FakeGuidanceTts, GrpcGuidanceUsage]
) -> None:
    fake, usage = guidance_tts
    service = FlowService(sessions, usage)
    flow = await service.create(Flow("", TENANT, "代表番号", DIALED, sample_flow(entry="hours")))
    await service.publish(TENANT, flow.id, 0, "a")  # v1 hears g-menu content 1
    fake.content["g-menu"] = 2  # the tenant changes the menu's audio
    await service.publish(TENANT, flow.id, 0, "a")  # v2 hears content 2
    await service.rollback(TENANT, flow.id, 1, "a")  # v3 hears what v1 heard

    def first_prompt(run: Any) -> str:
        action = run.steps[0].step.output
        assert isinstance(action, PlayAndCollect)
        return action.prompts[0].guidance_id

    heard = {
        v: first_prompt(await service.dry_run(TENANT, flow.id, v, [], CALLER, False, AT))
        for v in (0, 1, 2, 3)
    }
    assert heard == {0: "g-menu", 1: "g-menu@1", 2: "g-menu@2", 3: "g-menu@1"}
    assert fake.users[f"routing-flow/{flow.id}/v3"].pins["g-menu"] == 1

    # A live call on v3 is told to play the pinned content.
    handler = CallEventsHandler(sessions, lambda: None, RoutingMetrics(CollectorRegistry()))
    from hibiki.call.v1 import call_events_pb2

    started = call_events_pb2.CallStarted(dialed_number=DIALED, caller_number=CALLER)
    await handler(deliveries(call_event(TENANT, "c1", "c1:started", call_started=started)))
    (action,), _ = await queued(sessions)
    assert action.flow_version == 3
    assert [p.guidance_id for p in action.play_and_collect.prompts] == ["g-menu@1"]


async def test_a_refused_guidance_publishes_nothing(
    sessions: async_sessionmaker[AsyncSession], guidance_tts: tuple[FakeGuidanceTts, GrpcGuidanceUsage]
) -> None:
    fake, usage = guidance_tts
    service = FlowService(sessions, usage)
    flow = await service.create(Flow("", TENANT, "代表番号", DIALED, sample_flow(entry="hours")))
    del fake.content["g-closed"]  # deleted before routing recorded the draft (an older routing)

    with pytest.raises(FailedPrecondition, match="g-closed"):
        await service.publish(TENANT, flow.id, 0, "a")
    assert (await service.versions(TENANT, flow.id))[1] == []

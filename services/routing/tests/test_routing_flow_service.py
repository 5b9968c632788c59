"""Flow editing use cases over a real (SQLite) database: tenancy, field masks, revisions, versions, search."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from hibiki_routing.adapters.flow_repository import SearchFilter
from hibiki_routing.domain.editing import Flow
from hibiki_routing.domain.flows import AnnouncementNode, Node
from hibiki_routing.service_layer.flows import FlowService
from hibiki_runtime.errors import Aborted, AlreadyExists, FailedPrecondition, InvalidArgument, NotFound

from services.routing.tests.routing_db import migrated_database
from services.routing.tests.routing_flows import DIALED, sample_flow

A, B = "tenant-a", "tenant-b"


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[FlowService]:
    engine, sessions = await migrated_database(tmp_path)
    yield FlowService(sessions)
    await engine.dispose()


def draft(name: str = "代表番号", number: str = DIALED, tenant: str = A) -> Flow:
    return Flow("", tenant, name, number, sample_flow(entry="hours"))


async def test_other_tenants_cannot_see_or_change_a_flow(service: FlowService) -> None:
    flow = await service.create(draft())
    with pytest.raises(NotFound):
        await service.get(B, flow.id)
    with pytest.raises(NotFound):
        await service.update(B, replace(flow, tenant_id=B, name="x"), ["name"], flow.revision)
    with pytest.raises(NotFound):
        await service.publish(B, flow.id, 0, "b")
    assert (await service.search(B, SearchFilter(), "", 0)).flows == []


async def test_a_dialed_number_has_one_flow_across_tenants(service: FlowService) -> None:
    await service.create(draft())
    with pytest.raises(AlreadyExists):
        await service.create(draft(tenant=B))


async def test_update_changes_only_masked_fields_and_moves_the_revision(service: FlowService) -> None:
    flow = await service.create(draft())
    changes = replace(flow, name="新しい名前", dialed_number="+81399999999")

    updated = await service.update(A, changes, ["name"], flow.revision)

    assert (updated.name, updated.dialed_number, updated.revision) == ("新しい名前", DIALED, 2)
    assert (await service.get(A, flow.id)).name == "新しい名前"


async def test_stale_revision_is_aborted(service: FlowService) -> None:
    flow = await service.create(draft())
    await service.update(A, replace(flow, name="one"), ["name"], flow.revision)
    with pytest.raises(Aborted):
        await service.update(A, replace(flow, name="two"), ["name"], flow.revision)
    with pytest.raises(Aborted):
        await service.publish(A, flow.id, flow.revision, "a")


@pytest.mark.parametrize(
    ("paths", "revision", "field"),
    [([], 1, "update_mask"), (["revision"], 1, "update_mask"), (["name"], 0, "expected_revision")],
)
async def test_bad_updates_name_the_field(
    service: FlowService, paths: list[str], revision: int, field: str
) -> None:
    flow = await service.create(draft())
    with pytest.raises(InvalidArgument) as raised:
        await service.update(A, flow, paths, revision)
    assert [v.field for v in raised.value.violations] == [field]


async def test_create_refuses_a_malformed_draft_field_by_field(service: FlowService) -> None:
    with pytest.raises(InvalidArgument) as raised:
        await service.create(draft(number="03-1234-5678 内線"))
    assert raised.value.violations[0].field == "flow.dialed_number"


async def test_publish_refuses_a_draft_with_problems(service: FlowService) -> None:
    flow = await service.create(Flow("", A, "壊れた", DIALED, sample_flow(entry="menu")))
    assert {p.node_id for p in await service.validate(A, flow.id)} == {"hours", "closed"}
    with pytest.raises(FailedPrecondition, match="unreachable"):
        await service.publish(A, flow.id, flow.revision, "a")


async def test_versions_are_immutable_and_rollback_publishes_an_old_one_again(service: FlowService) -> None:
    flow = await service.create(draft())
    v1 = await service.publish(A, flow.id, flow.revision, "alice")
    nodes = (*flow.definition.nodes[:-1], Node("closed", AnnouncementNode("g-closed-v2")))
    edited = await service.update(
        A, replace(flow, definition=replace(flow.definition, nodes=nodes)), ["nodes"], 1
    )
    v2 = await service.publish(A, flow.id, edited.revision, "bob")

    rolled = await service.rollback(A, flow.id, 1, "carol")

    assert (v1.published_version, v2.published_version, rolled.published_version) == (1, 2, 3)
    _, versions = await service.versions(A, flow.id)
    assert [(v.version, v.published_by) for v in versions] == [(1, "alice"), (2, "bob"), (3, "carol")]
    assert versions[2].definition == versions[0].definition != versions[1].definition
    assert (await service.get(A, flow.id, 2)).definition.guidance_ids() >= {"g-closed-v2"}
    with pytest.raises(NotFound):
        await service.get(A, flow.id, 4)


async def test_rollback_makes_the_draft_what_is_live_and_never_drops_unpublished_changes_silently(
    service: FlowService,
) -> None:
    flow = await service.create(draft())
    v1 = await service.publish(A, flow.id, flow.revision, "alice")
    nodes = (*flow.definition.nodes[:-1], Node("closed", AnnouncementNode("g-closed-v2")))
    changed = replace(flow.definition, nodes=nodes)
    edited = await service.update(A, replace(flow, definition=changed), ["nodes"], v1.revision)
    await service.publish(A, flow.id, edited.revision, "bob")

    rolled = await service.rollback(A, flow.id, 1, "carol")

    # The next publish must not bring version 2's change back.
    assert rolled.definition == flow.definition and rolled.revision == edited.revision + 1
    assert (await service.get(A, flow.id)).definition == flow.definition
    again = await service.publish(A, flow.id, rolled.revision, "dave")
    assert (await service.get(A, flow.id, again.published_version)).definition == flow.definition

    # A draft edited but never published is not dropped without being asked to.
    pending = await service.update(A, replace(again, definition=changed), ["nodes"], again.revision)
    with pytest.raises(FailedPrecondition, match=r"never published.*discard_draft"):
        await service.rollback(A, flow.id, 2, "erin")
    assert (await service.get(A, flow.id)).revision == pending.revision
    dropped = await service.rollback(A, flow.id, 1, "erin", discard_draft=True)
    assert dropped.definition == flow.definition and dropped.published_version == 5


async def test_search_by_name_number_and_guidance_with_pages(service: FlowService) -> None:
    for i in range(5):
        await service.create(draft(name=f"店舗{i}", number=f"+8131234567{i}"))
    other = await service.create(draft(name="本社", number="+81399990000"))
    nodes = tuple(
        replace(n, kind=AnnouncementNode("g-special")) if n.id == "closed" else n
        for n in other.definition.nodes
    )
    await service.update(A, replace(other, definition=replace(other.definition, nodes=nodes)), ["nodes"], 1)

    first = await service.search(A, SearchFilter(name_contains="店舗"), "", 2)
    second = await service.search(A, SearchFilter(name_contains="店舗"), first.next_after_id, 2)
    third = await service.search(A, SearchFilter(name_contains="店舗"), second.next_after_id, 2)

    names = [f.name for page in (first, second, third) for f in page.flows]
    assert sorted(names) == [f"店舗{i}" for i in range(5)] and third.next_after_id == ""
    by_number = await service.search(A, SearchFilter(dialed_number="+81312345673"), "", 0)
    assert [f.name for f in by_number.flows] == ["店舗3"]
    by_guidance = await service.search(A, SearchFilter(guidance_id="g-special"), "", 0)
    assert [f.name for f in by_guidance.flows] == ["本社"]
    with pytest.raises(InvalidArgument):
        await service.search(A, SearchFilter(), "", 1000)


@pytest.mark.parametrize(
    "written", ["03-1234-5678", "(03)1234-5678", "０３－１２３４－５６７８", "+81 3 1234 5678"]
)
async def test_a_dialed_number_is_stored_and_searched_in_e164_however_it_is_written(
    service: FlowService, written: str
) -> None:
    flow = await service.create(draft(number=written))
    assert flow.dialed_number == "+81312345678"
    found = await service.search(A, SearchFilter(dialed_number=written), "", 0)
    assert [f.id for f in found.flows] == [flow.id]


async def test_a_search_for_what_is_not_a_phone_number_is_refused_not_empty(service: FlowService) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await service.search(A, SearchFilter(dialed_number="03-1234-567x"), "", 0)
    assert refused.value.violations[0].field == "dialed_number"

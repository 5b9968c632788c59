"""Box use cases against the database: uniqueness, search, revision history, tenant scope."""

from __future__ import annotations

import pytest
from hibiki_runtime.errors import AlreadyExists, InvalidArgument, NotFound

from .conftest import TENANT, Gateway


async def test_a_box_number_is_unique_within_a_tenant_but_not_across_tenants(gateway: Gateway) -> None:
    await gateway.boxes.create(TENANT, "op", "601", "案内", "本文", "")
    with pytest.raises(AlreadyExists):
        await gateway.boxes.create(TENANT, "op", "601", "別の案内", "本文", "")
    other = await gateway.boxes.create("tenant-b", "op", "601", "B社の案内", "本文", "")
    assert other.tenant_id == "tenant-b"
    assert (await gateway.boxes.get(TENANT, "601")).box_name == "案内"


async def test_search_treats_percent_and_underscore_as_text(gateway: Gateway) -> None:
    await gateway.boxes.create(TENANT, "op", "602", "50%オフ_案内", "本文", "")
    await gateway.boxes.create(TENANT, "op", "603", "500オフ案内", "本文", "")

    found, _ = await gateway.boxes.search(TENANT, "0%オフ_", page_size=10, page_token="")

    assert [box.box_number for box in found] == ["602"]


async def test_revisions_list_newest_first_in_pages(gateway: Gateway) -> None:
    await gateway.boxes.create(TENANT, "op", "604", "案内", "v1", "")
    for revision, text in ((1, "v2"), (2, "v3")):
        await gateway.boxes.update(TENANT, "op", "604", {"message_text": text}, revision)

    first, token = await gateway.boxes.revisions(TENANT, "604", page_size=2, page_token="")
    rest, last_token = await gateway.boxes.revisions(TENANT, "604", page_size=2, page_token=token)

    assert [(r.revision, r.message_text_after) for r in first + rest] == [(3, "v3"), (2, "v2"), (1, "v1")]
    assert last_token == ""


async def test_another_tenants_box_is_not_found_and_a_bad_page_token_is_refused(gateway: Gateway) -> None:
    with pytest.raises(NotFound):
        await gateway.boxes.get("tenant-b", "604")
    with pytest.raises(InvalidArgument) as error:
        await gateway.boxes.search(TENANT, "", page_size=10, page_token="not-a-token")
    assert error.value.violations[0].field == "page_token"

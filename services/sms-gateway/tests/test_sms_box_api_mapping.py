"""How UpdateSmsBox requests become changes, and the static carrier table."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from hibiki.sms.v1 import sms_box_service_pb2 as pb
from hibiki_runtime.errors import InvalidArgument
from hibiki_sms_gateway.adapters.carrier_table import StaticCarrierTable
from hibiki_sms_gateway.domain.carrier import Carrier
from hibiki_sms_gateway.domain.sms_box import create_box, edit_box
from hibiki_sms_gateway.entrypoints.grpc_api import requested_changes
from hibiki_sms_gateway.smsc_simulator.scenario import DEV_SCENARIO, Behaviour, Scenario

NOW = datetime(2026, 1, 5, tzinfo=UTC)
BOX, _ = create_box("t", "101", "予約", "本文", "", actor="op", now=NOW)


def update(box: pb.SmsBox, *paths: str) -> pb.UpdateSmsBoxRequest:
    return pb.UpdateSmsBoxRequest(sms_box=box, update_mask=FieldMask(paths=list(paths)), expected_revision=1)


@pytest.mark.parametrize("box", [pb.SmsBox(box_number="101", message_text="新"), pb.SmsBox(box_number="101")])
def test_without_a_mask_nothing_is_changed_and_update_mask_is_named(box: pb.SmsBox) -> None:
    # A box as read back without its URL must never erase the URL: an absent mask is refused.
    for request in (update(box), pb.UpdateSmsBoxRequest(sms_box=box, expected_revision=1)):
        with pytest.raises(InvalidArgument) as error:
            requested_changes(request)
        assert [v.field for v in error.value.violations] == ["update_mask"]
        assert "required" in error.value.message


def test_a_mask_naming_a_different_name_is_refused() -> None:
    changes = requested_changes(update(pb.SmsBox(box_number="101", box_name="別"), "box_name"))
    with pytest.raises(InvalidArgument) as error:
        edit_box(BOX, changes, expected_revision=1, actor="op", now=NOW)
    assert error.value.violations[0].field == "box_name"


def test_a_mask_naming_box_number_is_refused_even_with_the_same_number() -> None:
    changes = requested_changes(update(pb.SmsBox(box_number="101"), "box_number"))
    with pytest.raises(InvalidArgument) as error:
        edit_box(BOX, changes, expected_revision=1, actor="op", now=NOW)
    assert error.value.violations[0].field == "box_number"


def test_a_mask_only_changes_the_fields_it_names() -> None:
    changes = requested_changes(
        update(pb.SmsBox(box_number="101", message_text="x", url="https://a.jp"), "url")
    )
    assert changes == {"url": "https://a.jp"}


def test_a_mask_path_that_is_no_field_is_refused_naming_update_mask() -> None:
    with pytest.raises(InvalidArgument) as error:
        requested_changes(update(pb.SmsBox(box_number="101"), "colour"))
    assert error.value.violations[0].field == "update_mask"


async def test_the_static_carrier_table_uses_the_longest_prefix_and_refuses_unknown_networks() -> None:
    table = StaticCarrierTable({"+8190": "docomo", "+819012": "au", "+819099": "none"})
    assert await table.resolve("+819012345678") == Carrier.KDDI
    assert await table.resolve("+819034567890") == Carrier.DOCOMO
    assert await table.resolve("+819099000000") is None
    assert await table.resolve("+818012345678") is None


async def test_the_development_scenario_gives_the_service_and_the_simulator_one_carrier_map() -> None:
    table = StaticCarrierTable.from_scenario(DEV_SCENARIO)
    scenario = Scenario.load(DEV_SCENARIO)
    assert await table.resolve("+819060012345") is None  # the simulator's "unsupported carrier" range
    assert await table.resolve("+819020012345") == Carrier.KDDI
    assert scenario.rule_for("+819020012345").behaviour == Behaviour.EXPIRE
    assert scenario.rule_for("+819012345678").behaviour == Behaviour.DELIVER

"""Numbers typed for the blocklist and dry runs are read as the runtime reads every number (E.164)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hibiki_routing.adapters.blocklist_repository import BlockedNumber
from hibiki_routing.domain.mobile_capture import can_receive_sms, keyed_mobile_number
from hibiki_routing.service_layer.blocklist import BlocklistService
from hibiki_runtime.errors import InvalidArgument
from hibiki_runtime.phone import PHONE_HINT

from services.routing.tests.routing_db import migrated_database


async def test_a_blocked_number_written_nationally_or_full_width_is_stored_and_removed_as_e164(
    tmp_path: Path,
) -> None:
    engine, sessions = await migrated_database(tmp_path)
    blocklist = BlocklistService(sessions)
    added = await blocklist.add("t", BlockedNumber("０９０－１２３４－５６７８", "いたずら"))
    assert added.number == "+819012345678"
    await blocklist.remove("t", "090 1234 5678")
    assert (await blocklist.page("t", "", 0))[0] == []
    with pytest.raises(InvalidArgument) as refused:
        await blocklist.add("t", BlockedNumber("090-1234-567８x", ""))
    assert refused.value.violations[0].description == PHONE_HINT
    await engine.dispose()


def test_the_mobile_rule_sits_on_the_parsed_number() -> None:
    assert can_receive_sms("+819012345678") and not can_receive_sms("+81312345678")
    assert not can_receive_sms("+8190123456789")  # 11 national digits: not a Japanese mobile
    assert keyed_mobile_number("07012345678#") == "+817012345678"

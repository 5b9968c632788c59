"""Parts and receipts keyed by connector and time: a reused carrier message id never names an old message."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hibiki_runtime.db import create_engine, session_factory, upgrade_to_head
from hibiki_sms_gateway.adapters.message_repository import MessageRepository
from hibiki_sms_gateway.adapters.receipt_repository import PartId, ReceiptRepository, SubmittedParts
from hibiki_sms_gateway.domain.lifecycle import MessageState
from hibiki_sms_gateway.domain.receipts import Receipt
from hibiki_sms_gateway.domain.sms_message import SmsMessage, Snapshot
from hibiki_sms_gateway.entrypoints.main import MIGRATIONS
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

NOW = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
SMSC_A, SMSC_B = "smpp:hibiki@smsc-a:2775", "smpp:hibiki@smsc-b:2775"


def message(request_id: str, at: datetime = NOW) -> SmsMessage:
    snapshot = Snapshot("100", "案内", 1, "本文", "", "本文", 1)
    return SmsMessage(
        request_id, "t", "+819010000001", MessageState.ACCEPTED, "", "docomo", 1, snapshot, at, at
    )


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'sms.db'}")
    await upgrade_to_head(engine, MIGRATIONS)
    yield session_factory(engine)
    await engine.dispose()


async def test_parts_are_kept_in_order_per_request(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        await MessageRepository(session).add_all([message("long"), message("short")])
        parts = ReceiptRepository(session)
        await parts.add_parts([SubmittedParts("long", [PartId(SMSC_A, f"l-{n}") for n in (1, 2, 3)], NOW)])
        await parts.add_parts([SubmittedParts("short", [PartId(SMSC_A, "s-1")], NOW)])
        await parts.add_parts([])
        stored = await parts.parts_of(["long", "short", "unknown"])
    assert {rid: [p.carrier_message_id for p in ps] for rid, ps in stored.items()} == {
        "long": ["l-1", "l-2", "l-3"],
        "short": ["s-1"],
    }
    assert [p.part_number for p in stored["long"]] == [1, 2, 3]


async def test_a_reused_id_names_the_latest_part_of_its_connector_before_the_receipt(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a_month_ago = NOW - timedelta(days=30)
    async with sessions.begin() as session:
        await MessageRepository(session).add_all([message("old", a_month_ago), message("new"), message("b")])
        repository = ReceiptRepository(session)
        # The SMSC numbered from 1 again after a restart; another SMSC account uses the same numbers.
        await repository.add_parts([SubmittedParts("old", [PartId(SMSC_A, "1")], a_month_ago)])
        await repository.add_parts([SubmittedParts("new", [PartId(SMSC_A, "1")], NOW)])
        await repository.add_parts([SubmittedParts("b", [PartId(SMSC_B, "1")], NOW)])
        await repository.add_receipts(
            SMSC_A, [Receipt("1", "DELIVRD", "000", "819010000001", "2611241000")], NOW
        )
        await repository.add_receipts(
            SMSC_B, [Receipt("1", "UNDELIV", "006", "819010000001", "2611241000")], NOW
        )
        pending = await repository.pending(received_after=NOW - timedelta(days=1))
        named = await repository.parts_named(pending)
    assert {r.connector: named[r.id].request_id for r in pending} == {SMSC_A: "new", SMSC_B: "b"}


async def test_a_receipt_sent_again_is_kept_once_but_a_reused_id_later_is_a_new_receipt(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    first = Receipt("7", "DELIVRD", "000", "819010000001", "2611241000")
    async with sessions.begin() as session:
        repository = ReceiptRepository(session)
        await repository.add_receipts(SMSC_A, [first, first], NOW)
        await repository.add_receipts(SMSC_A, [first], NOW + timedelta(seconds=1))  # the answer was lost
        later = Receipt("7", "DELIVRD", "000", "819010000002", "2612241000")  # the id again, a month on
        await repository.add_receipts(SMSC_A, [later], NOW + timedelta(days=30))
        pending = await repository.pending(received_after=NOW - timedelta(days=1))
    assert sorted((r.receipt.submit_date, r.receipt.recipient) for r in pending) == [
        ("2611241000", "819010000001"),
        ("2612241000", "819010000002"),
    ]


async def test_matched_receipts_leave_the_pending_list_and_name_their_part(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        await MessageRepository(session).add_all([message("m")])
        repository = ReceiptRepository(session)
        await repository.add_parts([SubmittedParts("m", [PartId(SMSC_A, "p-1"), PartId(SMSC_A, "p-2")], NOW)])
        await repository.add_receipts(SMSC_A, [Receipt("p-2", "DELIVRD", "000")], NOW + timedelta(seconds=3))
        pending = await repository.pending(received_after=NOW, carrier_message_ids=["p-1", "p-2"])
        assert await repository.pending(received_after=NOW, carrier_message_ids=[]) == []
        named = await repository.parts_named(pending)
        await repository.match({r.id: named[r.id].id for r in pending})
        parts = (await repository.parts_of(["m"]))["m"]
        by_part = await repository.receipts_of_parts([p.id for p in parts])
        assert await repository.pending(received_after=NOW) == []
    assert {p.carrier_message_id: by_part[p.id].receipt.state for p in parts if p.id in by_part} == {
        "p-2": "DELIVRD"
    }

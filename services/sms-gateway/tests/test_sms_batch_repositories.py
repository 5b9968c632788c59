"""The set-based repository methods the dispatcher uses once per batch (SQLite; PostgreSQL in integration)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hibiki_runtime.db import create_engine, session_factory, upgrade_to_head
from hibiki_sms_gateway.adapters.box_repository import BoxRepository
from hibiki_sms_gateway.adapters.message_repository import MessageRepository, StateChange
from hibiki_sms_gateway.adapters.short_link_repository import ShortLinkRepository
from hibiki_sms_gateway.domain.lifecycle import MessageState
from hibiki_sms_gateway.domain.short_links import ShortLink
from hibiki_sms_gateway.domain.sms_box import create_box
from hibiki_sms_gateway.domain.sms_message import SmsMessage, Snapshot
from hibiki_sms_gateway.entrypoints.main import MIGRATIONS
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

NOW = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
A, B = "tenant-a", "tenant-b"


def message(
    request_id: str,
    recipient: str = "+819010000001",
    *,
    tenant: str = A,
    state: MessageState = MessageState.SUBMITTING,
    created_at: datetime = NOW,
) -> SmsMessage:
    snapshot = Snapshot("100", "案内", 1, "本文", "", "本文", 1)
    return SmsMessage(request_id, tenant, recipient, state, "", "docomo", 0, snapshot, created_at, created_at)


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'sms.db'}")
    await upgrade_to_head(engine, MIGRATIONS)
    yield session_factory(engine)
    await engine.dispose()


async def test_add_all_stores_new_requests_and_names_them(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        assert await MessageRepository(session).add(message("seen"))
    async with sessions.begin() as session:
        messages = MessageRepository(session)
        new = await messages.add_all([message("seen"), message("new-1"), message("new-2", tenant=B)])
        assert new == {"new-1", "new-2"}
        assert await messages.add_all([]) == set()
        assert not await messages.add(message("new-1"))
        stored = await messages.get("new-2")
    assert stored == message("new-2", tenant=B)


async def test_owners_names_the_tenant_of_each_known_request(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        messages = MessageRepository(session)
        await messages.add_all([message("of-a"), message("of-b", tenant=B)])
        assert await messages.owners({"of-a", "of-b", "unknown"}) == {"of-a": A, "of-b": B}
        assert await messages.owners(set()) == {}


async def test_opted_out_is_per_tenant(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        messages = MessageRepository(session)
        await messages.opt_out(A, "+819010000001", NOW)
        await messages.opt_out(B, "+819010000002", NOW)
        asked = {(A, "+819010000001"), (A, "+819010000002"), (B, "+819010000001")}
        assert await messages.opted_out(asked) == {(A, "+819010000001")}
        assert await messages.opted_out(set()) == set()


async def test_sends_since_counts_sends_in_the_window_per_tenant_and_recipient_but_not_rejections(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    one, two = "+819010000001", "+819010000002"
    async with sessions.begin() as session:
        messages = MessageRepository(session)
        await messages.add_all(
            [
                message("recent", one, created_at=NOW - timedelta(minutes=5)),
                message("accepted", one, state=MessageState.ACCEPTED, created_at=NOW - timedelta(hours=1)),
                message("too-old", one, created_at=NOW - timedelta(days=2)),
                message("rejected", one, state=MessageState.REJECTED, created_at=NOW),
                message("other-tenant", one, tenant=B, created_at=NOW),
                message("other-recipient", two, created_at=NOW),
            ]
        )
        since = NOW - timedelta(hours=24)
        sends = await messages.sends_since({(A, one), (A, "+819010000009")}, since)
        # asked across tenants, a pair not asked for (A's sends to `two`, B's to `one`) stays out
        across = await messages.sends_since({(A, one), (B, two)}, since)
    assert sends.keys() == {(A, one)}
    assert sorted(sends[(A, one)]) == [NOW - timedelta(hours=1), NOW - timedelta(minutes=5)]
    assert across == sends


async def test_state_changes_apply_only_to_messages_still_in_their_current_state(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    later = NOW + timedelta(seconds=3)
    async with sessions.begin() as session:
        messages = MessageRepository(session)
        await messages.add_all(
            [message("sending-1"), message("sending-2"), message("settled", state=MessageState.UNCERTAIN)]
        )
        still = await messages.lock_in_state(
            ["sending-1", "sending-2", "settled", "unknown"], MessageState.SUBMITTING
        )
        assert still == {"sending-1", "sending-2"}
        await messages.change_states(
            [
                StateChange(
                    "sending-1", MessageState.SUBMITTING, MessageState.ACCEPTED, "accepted", 2, later
                ),
                StateChange(
                    "sending-2", MessageState.SUBMITTING, MessageState.FAILED, "retries_exhausted", 8, later
                ),
                StateChange("settled", MessageState.SUBMITTING, MessageState.ACCEPTED, "accepted", 1, later),
            ]
        )
    async with sessions() as session:
        messages = MessageRepository(session)
        got = {rid: await messages.get(rid) for rid in ("sending-1", "sending-2", "settled")}
    assert {rid: (m.state, m.reason, m.attempts) for rid, m in got.items() if m} == {
        "sending-1": (MessageState.ACCEPTED, "accepted", 2),
        "sending-2": (MessageState.FAILED, "retries_exhausted", 8),
        "settled": (MessageState.UNCERTAIN, "", 0),
    }
    assert got["sending-1"] is not None and got["sending-1"].updated_at == later


async def test_boxes_are_found_by_tenant_and_number(sessions: async_sessionmaker[AsyncSession]) -> None:
    ours, revision = create_box(A, "100", "案内", "本文", "", actor="op", now=NOW)
    theirs, their_revision = create_box(B, "200", "案内", "本文", "", actor="op", now=NOW)
    async with sessions.begin() as session:
        boxes = BoxRepository(session)
        await boxes.add(ours, revision)
        await boxes.add(theirs, their_revision)
        found = await boxes.get_many({(A, "100"), (A, "200"), (B, "100"), (B, "200")})
        assert found == {(A, "100"): ours, (B, "200"): theirs}
        assert await boxes.get_many({(A, "200"), (B, "100")}) == {}
        assert await boxes.get_many(set()) == {}


async def test_short_links_are_added_together(sessions: async_sessionmaker[AsyncSession]) -> None:
    links = [
        ShortLink(f"token-{n}", f"req-{n}", A, "https://example.jp", f"https://s.jp/s/token-{n}", NOW, NOW)
        for n in range(3)
    ]
    async with sessions.begin() as session:
        await MessageRepository(session).add_all([message(link.request_id) for link in links])
        await ShortLinkRepository(session).add_all(links)
        await ShortLinkRepository(session).add_all([])
    async with sessions() as session:
        stored = [await ShortLinkRepository(session).get(link.token) for link in links]
    assert stored == links

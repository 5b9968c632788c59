"""Retention: final messages (with parts and short links) and receipts older than the period are deleted in
batches; messages still being worked on, opt-outs and box revisions are kept (SQLite here; the same scenario
runs on PostgreSQL in tests/integration/test_sms_gateway_retention.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hibiki_runtime.db import create_engine, session_factory, upgrade_to_head
from hibiki_runtime.service import repeat
from hibiki_sms_gateway.adapters.metrics import SmsMetrics
from hibiki_sms_gateway.adapters.tables import (
    sms_box_revisions,
    sms_boxes,
    sms_message_parts,
    sms_messages,
    sms_opt_outs,
    sms_receipts,
    sms_short_links,
)
from hibiki_sms_gateway.domain.lifecycle import TERMINAL, MessageState
from hibiki_sms_gateway.entrypoints.main import MIGRATIONS
from hibiki_sms_gateway.service_layer.retention import RetentionJob
from hibiki_sms_gateway.settings import SmsGatewaySettings
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from sqlalchemy import Integer, Table, event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

NOW = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
CUTOFF = NOW - timedelta(days=90)
OLD = NOW - timedelta(days=91)
RECENT = NOW - timedelta(days=89)
TENANT = "tenant-a"
IN_FLIGHT = set(MessageState) - TERMINAL  # requested, submitting, accepted, …: still being worked on
DELETED = "hibiki_sms_gateway_retention_deleted_rows_total"
COMPLETED = "hibiki_sms_gateway_retention_last_completed_timestamp_seconds"


def filled(table: Table, **values: Any) -> dict[str, Any]:
    """`values` and a placeholder for every other required column, so the rows survive added columns."""
    row = dict(values)
    for column in table.columns:
        if column.name in row or column.nullable or column.default is not None or column.server_default:
            continue
        if column.primary_key and isinstance(column.type, Integer):
            continue  # a surrogate key
        python_type = column.type.python_type
        row[column.name] = NOW if python_type is datetime else python_type()
    return row


async def add_message(
    session: AsyncSession, request_id: str, state: MessageState, updated_at: datetime, *, parts: int = 2
) -> None:
    """A message as sent to 090-1000-0001 with its parts (carrier ids `<request_id>-<n>`) and short link."""
    await session.execute(
        sms_messages.insert().values(
            filled(
                sms_messages,
                request_id=request_id,
                tenant_id=TENANT,
                recipient="+819010000001",
                state=state.value,
                carrier="docomo",
                box_number="100",
                box_name="予約案内",
                box_revision=1,
                message_text="ご予約ありがとうございます。",
                url="https://example.jp/r",
                rendered_text="ご予約ありがとうございます。\nhttps://s.example.jp/s/abc",
                segments=1,
                created_at=updated_at - timedelta(minutes=1),
                updated_at=updated_at,
            )
        )
    )
    for number in range(1, parts + 1):
        await session.execute(
            sms_message_parts.insert().values(
                filled(
                    sms_message_parts,
                    carrier_message_id=f"{request_id}-{number}",
                    request_id=request_id,
                    part_number=number,
                )
            )
        )
    await session.execute(
        sms_short_links.insert().values(
            filled(
                sms_short_links,
                token=f"t-{request_id}"[:32],
                request_id=request_id,
                tenant_id=TENANT,
                target_url="https://example.jp/r",
                short_url=f"https://s.example.jp/s/t-{request_id}",
                created_at=updated_at,
                expires_at=updated_at + timedelta(days=90),
                clicks=0,
            )
        )
    )


async def add_receipt(session: AsyncSession, carrier_message_id: str, received_at: datetime) -> None:
    await session.execute(
        sms_receipts.insert().values(
            filled(
                sms_receipts,
                carrier_message_id=carrier_message_id,
                state="DELIVRD",
                error_code="000",
                received_at=received_at,
                applied=1,
            )
        )
    )


async def seed(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Old final messages of every final state, old ones still in flight, recent ones, receipts either side of
    the cutoff, an old opt-out and an old box revision."""
    async with sessions.begin() as session:
        for state in TERMINAL:
            await add_message(session, f"old-{state.value}", state, OLD)
        await add_message(session, "edge-gone", MessageState.DELIVERED, CUTOFF - timedelta(minutes=1))
        await add_message(session, "edge-kept", MessageState.DELIVERED, CUTOFF + timedelta(minutes=1))
        await add_message(session, "recent-delivered", MessageState.DELIVERED, RECENT)
        for state in IN_FLIGHT:
            await add_message(session, f"old-{state.value}", state, OLD)
        await add_receipt(session, "old-delivered-1", OLD)
        await add_receipt(session, "old-delivered-2", OLD)
        await add_receipt(session, "edge-gone-1", CUTOFF - timedelta(minutes=1))
        await add_receipt(session, "edge-kept-1", CUTOFF + timedelta(minutes=1))
        await add_receipt(session, "recent-delivered-1", RECENT)
        await session.execute(
            sms_opt_outs.insert().values(
                filled(sms_opt_outs, tenant_id=TENANT, recipient="+819010000001", created_at=OLD)
            )
        )
        await session.execute(
            sms_boxes.insert().values(
                filled(
                    sms_boxes,
                    tenant_id=TENANT,
                    box_number="100",
                    box_name="予約案内",
                    message_text="ご予約ありがとうございます。",
                    url="https://example.jp/r",
                    revision=1,
                    created_at=OLD,
                    updated_at=OLD,
                )
            )
        )
        await session.execute(
            sms_box_revisions.insert().values(
                filled(
                    sms_box_revisions,
                    tenant_id=TENANT,
                    box_number="100",
                    revision=1,
                    actor="op",
                    changed_at=OLD,
                    message_text_before="",
                    message_text_after="ご予約ありがとうございます。",
                    url_before="",
                    url_after="https://example.jp/r",
                )
            )
        )


async def remaining(sessions: async_sessionmaker[AsyncSession]) -> dict[str, set[str]]:
    """What is left of each table, by the value that names a row."""
    async with sessions() as session:

        async def values(column: Any) -> set[str]:
            return {str(value) for value in (await session.scalars(select(column))).all()}

        return {
            "messages": await values(sms_messages.c.request_id),
            "parts": await values(sms_message_parts.c.carrier_message_id),
            "links": await values(sms_short_links.c.request_id),
            "receipts": await values(sms_receipts.c.carrier_message_id),
            "opt_outs": await values(sms_opt_outs.c.recipient),
            "box_revisions": await values(sms_box_revisions.c.revision),
        }


KEPT_MESSAGES = {"edge-kept", "recent-delivered", *(f"old-{state.value}" for state in IN_FLIGHT)}


def job(
    sessions: async_sessionmaker[AsyncSession], registry: CollectorRegistry, batch_size: int = 1000
) -> RetentionJob:
    return RetentionJob(sessions, SmsMetrics(registry), days=90, batch_size=batch_size, now=lambda: NOW)


async def check_scenario(sessions: async_sessionmaker[AsyncSession], batch_size: int) -> None:
    """Seed, run once, and check what is gone, what is kept and what the metrics say."""
    await seed(sessions)
    registry = CollectorRegistry()
    assert registry.get_sample_value(COMPLETED) is None

    deleted = await job(sessions, registry, batch_size).run_once()

    left = await remaining(sessions)
    assert left["messages"] == KEPT_MESSAGES
    assert left["links"] == KEPT_MESSAGES
    assert left["parts"] == {f"{request_id}-{n}" for request_id in KEPT_MESSAGES for n in (1, 2)}
    assert left["receipts"] == {"edge-kept-1", "recent-delivered-1"}
    assert left["opt_outs"] == {"+819010000001"}  # the recipient's refusal outlives retention
    assert left["box_revisions"] == {"1"}
    gone = len(TERMINAL) + 1  # one old message per final state, and edge-gone
    counted = {
        table: registry.get_sample_value(DELETED, {"table": table})
        for table in ("sms_messages", "sms_message_parts", "sms_short_links", "sms_receipts")
    }
    assert counted == {
        "sms_messages": gone,
        "sms_message_parts": 2 * gone,
        "sms_short_links": gone,
        "sms_receipts": 3,
    }
    assert deleted == sum(counted.values())  # type: ignore[arg-type]
    assert registry.get_sample_value(COMPLETED) == NOW.timestamp()


async def check_batches(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], *, rows: int, batch_size: int
) -> int:
    """Old delivered messages and receipts, `rows` of each, all deleted; returns the transactions used."""
    async with sessions.begin() as session:
        for n in range(rows):
            await add_message(session, f"batch-{n}", MessageState.DELIVERED, OLD, parts=1)
            await add_receipt(session, f"batch-{n}-1", OLD)
    commits = 0

    def committed(*_: Any) -> None:
        nonlocal commits
        commits += 1

    event.listen(engine.sync_engine, "commit", committed)
    try:
        registry = CollectorRegistry()
        deleted = await job(sessions, registry, batch_size).run_once()
    finally:
        event.remove(engine.sync_engine, "commit", committed)
    assert await remaining(sessions) == {
        "messages": set(),
        "parts": set(),
        "links": set(),
        "receipts": set(),
        "opt_outs": set(),
        "box_revisions": set(),
    }
    assert deleted == 4 * rows
    for table in ("sms_messages", "sms_message_parts", "sms_short_links", "sms_receipts"):
        assert registry.get_sample_value(DELETED, {"table": table}) == rows
    return commits


# ------------------------------------------------------------------------------------------------------------


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'sms.db'}")
    await upgrade_to_head(engine, MIGRATIONS)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


async def test_old_final_messages_and_receipts_go_the_rest_stays(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await check_scenario(sessions, batch_size=1000)


async def test_the_same_in_batches_of_one(sessions: async_sessionmaker[AsyncSession]) -> None:
    await check_scenario(sessions, batch_size=1)


async def test_batches_of_two_over_five_rows_take_several_transactions(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    commits = await check_batches(engine, sessions, rows=5, batch_size=2)
    # delivered: 2 + 2 + 1; the four other final states: one empty batch each; receipts: 2 + 2 + 1
    assert commits == 3 + 4 + 3


async def test_a_second_run_finds_nothing(sessions: async_sessionmaker[AsyncSession]) -> None:
    await seed(sessions)
    retention = job(sessions, CollectorRegistry())
    assert await retention.run_once() > 0
    assert await retention.run_once() == 0
    assert (await remaining(sessions))["messages"] == KEPT_MESSAGES


class FlakySessions:
    """Sessions whose first transaction fails (a database that is briefly unreachable)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self.failures = 1

    def begin(self) -> Any:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database unreachable")
        return self._sessions.begin()


async def test_a_failed_run_is_logged_and_retried(
    sessions: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    await seed(sessions)
    registry = CollectorRegistry()
    flaky = FlakySessions(sessions)
    retention = RetentionJob(flaky, SmsMetrics(registry), days=90, batch_size=2, now=lambda: NOW)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR):
        running = asyncio.create_task(repeat("sms retention", 0.01, retention.run_once))
        try:
            for _ in range(500):
                if registry.get_sample_value(COMPLETED):
                    break
                await asyncio.sleep(0.01)
            assert not running.done()  # the failure did not end the loop
        finally:
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running
    assert "sms retention failed" in caplog.text
    assert registry.get_sample_value(COMPLETED) == NOW.timestamp()
    assert (await remaining(sessions))["messages"] == KEPT_MESSAGES


def test_settings_default_to_ninety_days_and_refuse_less_than_one() -> None:
    settings = SmsGatewaySettings()
    assert settings.sms_retention_days == 90
    assert settings.sms_retention_batch == 1000
    assert settings.sms_retention_interval_seconds == 3600
    with pytest.raises(ValidationError):
        SmsGatewaySettings(sms_retention_days=0)
    with pytest.raises(ValidationError):
        SmsGatewaySettings(sms_retention_batch=0)

"""sms-gateway retention on PostgreSQL: the scenario of services/sms-gateway/tests/test_sms_retention.py
(old final messages with their parts and short links and old receipts go; recent and unfinished messages,
opt-outs and box revisions stay; batches), two replicas deleting at once, and the plans it relies on."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hibiki_devstack.infra import Postgres, free_port
from hibiki_runtime.db import create_engine, session_factory, upgrade_to_head
from hibiki_sms_gateway.adapters.metrics import SmsMetrics
from hibiki_sms_gateway.domain.lifecycle import MessageState
from hibiki_sms_gateway.entrypoints.main import MIGRATIONS
from hibiki_sms_gateway.service_layer.retention import RetentionJob
from prometheus_client import CollectorRegistry
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

SCENARIO_FILE = Path(__file__).resolve().parents[2] / "services/sms-gateway/tests/test_sms_retention.py"


def _load_scenario() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sms_retention_scenario", SCENARIO_FILE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


scenario = _load_scenario()


@pytest.fixture
async def engine(postgres: Postgres) -> AsyncIterator[AsyncEngine]:
    database = f"sms_retention_{free_port()}"
    postgres.create_database(database)
    engine = create_engine(postgres.url(database))
    await upgrade_to_head(engine, MIGRATIONS)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


async def test_old_final_messages_and_receipts_go_the_rest_stays(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await scenario.check_scenario(sessions, batch_size=1000)


async def test_the_same_in_batches_of_one(sessions: async_sessionmaker[AsyncSession]) -> None:
    await scenario.check_scenario(sessions, batch_size=1)


async def test_batches_of_two_over_five_rows_take_several_transactions(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    commits = await scenario.check_batches(engine, sessions, rows=5, batch_size=2)
    assert commits == 3 + 4 + 3


async def test_two_replicas_at_once_delete_everything_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    rows = 60
    async with sessions.begin() as session:
        for n in range(rows):
            await scenario.add_message(session, f"twin-{n}", MessageState.DELIVERED, scenario.OLD, parts=1)
            await scenario.add_receipt(session, f"twin-{n}-1", scenario.OLD)
    registries = [CollectorRegistry(), CollectorRegistry()]
    jobs = [
        RetentionJob(sessions, SmsMetrics(registry), days=90, batch_size=3, now=lambda: scenario.NOW)
        for registry in registries
    ]

    deleted = await asyncio.gather(*(job.run_once() for job in jobs))

    assert sum(deleted) == 4 * rows  # every row deleted by exactly one of them
    left = await scenario.remaining(sessions)
    assert not left["messages"] and not left["parts"] and not left["links"] and not left["receipts"]


async def test_messages_are_found_through_the_state_index_and_receipts_by_row_id(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await scenario.seed(sessions)
    statements: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.startswith(("SELECT sms_messages.request_id", "DELETE FROM sms_receipts")):
            statements.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        await scenario.job(sessions, CollectorRegistry()).run_once()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    select_message = next(s for s in statements if s[0].startswith("SELECT"))
    delete_receipts = next(s for s in statements if s[0].startswith("DELETE"))
    async with engine.connect() as connection:
        await connection.execute(text("SET enable_seqscan = off"))  # the tables are tiny: plan as if large

        async def plan(statement: str, parameters: Any) -> str:
            rows = await connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
            return "\n".join(row[0] for row in rows)

        assert "ix_sms_messages_state" in await plan(*select_message)
        assert "Tid Scan" in await plan(*delete_receipts)

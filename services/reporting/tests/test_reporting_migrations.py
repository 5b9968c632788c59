"""The migrations build exactly the tables the repositories map, on a new database and on an older one."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hibiki_reporting.adapters.tables import metadata
from hibiki_reporting.entrypoints.main import MIGRATIONS
from hibiki_runtime.db import alembic_config, create_engine, upgrade_to_head
from hibiki_runtime.outbox import reliability_metadata
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine


async def unexplained_differences(engine: AsyncEngine) -> list[tuple[str, object]]:
    async with engine.connect() as connection:
        differences = await connection.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
        )
    # The runtime's outbox and processed_events come from migration 0001, not from this service's metadata.
    runtime_tables = set(reliability_metadata.tables)
    return [
        (kind, item)
        for kind, item, *_ in differences
        if not (
            kind in ("remove_table", "remove_index") and getattr(item, "table", item).name in runtime_tables
        )
    ]


async def test_the_migrations_create_exactly_the_tables_the_code_maps(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'reporting.db'}")
    try:
        await upgrade_to_head(engine, MIGRATIONS)
        assert await unexplained_differences(engine) == []
    finally:
        await engine.dispose()


async def test_a_database_of_revision_0003_gets_the_end_reason_column(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'reporting.db'}")

    def to_0003_without_end_reason(connection: Connection) -> None:
        config = alembic_config(MIGRATIONS)
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
        # 0002 creates the tables from today's definitions; a database made back then had no end_reason.
        connection.execute(text("ALTER TABLE call_records DROP COLUMN end_reason"))
        connection.execute(
            text(
                "INSERT INTO call_records (call_id, tenant_id, report_date, dialed_number, caller_number,"
                " first_seen, outcome, path) VALUES ('old', 't', '2026-11-09', '', '', '2026-11-09', "
                "'abandoned', '[]')"
            )
        )

    try:
        async with engine.begin() as connection:
            await connection.run_sync(to_0003_without_end_reason)
            columns = await connection.run_sync(lambda sync: inspect(sync).get_columns("call_records"))
            assert "end_reason" not in {column["name"] for column in columns}
        await upgrade_to_head(engine, MIGRATIONS)
        assert await unexplained_differences(engine) == []
        async with engine.connect() as connection:
            kept = await connection.execute(text("SELECT outcome, end_reason FROM call_records"))
            assert kept.all() == [("abandoned", "")]
    finally:
        await engine.dispose()

"""The migrations build exactly the tables the repositories map."""

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hibiki_guidance_tts.adapters.tables import metadata
from hibiki_guidance_tts.entrypoints.main import MIGRATIONS
from hibiki_runtime.db import create_engine, upgrade_to_head
from hibiki_runtime.outbox import reliability_metadata


async def test_the_migrations_create_exactly_the_tables_the_code_maps(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'guidance.db'}")
    try:
        await upgrade_to_head(engine, MIGRATIONS)
        async with engine.connect() as connection:
            differences = await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
    finally:
        await engine.dispose()
    # The runtime's outbox and processed_events come from migration 0001, not from this service's metadata.
    runtime_tables = set(reliability_metadata.tables)
    unexplained = [
        (kind, item)
        for kind, item, *_ in differences
        if not (
            kind in ("remove_table", "remove_index") and getattr(item, "table", item).name in runtime_tables
        )
    ]
    assert unexplained == []

"""Every column that stores a contract field holds the field's declared limit, on PostgreSQL after migrations.

Limits are declared once, in proto/ (buf.validate); tables name the field a column stores
(`info=hibiki_runtime.contract.stores(...)`). A column shorter than its field's limit would let a record the
consumer edge accepted fail in the database (PostgreSQL refuses over-long strings; SQLite does not).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hibiki_devstack.infra import Postgres, free_port
from hibiki_runtime.contract import max_len_of
from hibiki_runtime.db import create_engine, upgrade_to_head
from hibiki_runtime.outbox import reliability_metadata
from sqlalchemy import MetaData, text


def _services() -> list[tuple[str, Path, MetaData]]:
    from hibiki_reporting.adapters.tables import metadata as reporting
    from hibiki_reporting.entrypoints.main import MIGRATIONS as REPORTING
    from hibiki_routing.adapters.tables import metadata as routing
    from hibiki_routing.entrypoints.main import MIGRATIONS as ROUTING
    from hibiki_sms_gateway.adapters.tables import metadata as sms
    from hibiki_sms_gateway.entrypoints.main import MIGRATIONS as SMS

    return [("routing", ROUTING, routing), ("sms-gateway", SMS, sms), ("reporting", REPORTING, reporting)]


@pytest.mark.parametrize(("service", "migrations", "metadata"), _services(), ids=lambda v: str(v)[:12])
async def test_columns_storing_contract_fields_hold_their_declared_limit(
    postgres: Postgres, service: str, migrations: Path, metadata: MetaData
) -> None:
    database = f"columns_{service.replace('-', '_')}_{free_port()}"
    postgres.create_database(database)
    engine = create_engine(postgres.url(database))
    try:
        await upgrade_to_head(engine, migrations)
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT table_name, column_name, character_maximum_length FROM information_schema.columns"
                    " WHERE table_schema = 'public'"
                )
            )
            lengths = {(table, column): length for table, column, length in rows}
    finally:
        await engine.dispose()
    checked = []
    for table in [*metadata.tables.values(), *reliability_metadata.tables.values()]:
        for column in table.columns:
            field = column.info.get("contract")
            if field is None:
                continue
            migrated = lengths[(table.name, column.name)]
            limit = max_len_of(field)
            assert migrated is not None and migrated >= limit, (
                f"{table.name}.{column.name} is VARCHAR({migrated}) but stores {field} (up to {limit})"
            )
            checked.append(f"{table.name}.{column.name}")
    assert len(checked) >= 4, checked

"""Small SQL helpers shared by the repositories (both dialects: SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from hibiki_runtime.db import dialect_insert
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession


def insert_ignoring_duplicates(session: AsyncSession, table: Table, key: list[str], **values: Any) -> Any:
    """INSERT … ON CONFLICT DO NOTHING; the result's rowcount tells whether the row was new."""
    return dialect_insert(session, table).values(**values).on_conflict_do_nothing(index_elements=key)

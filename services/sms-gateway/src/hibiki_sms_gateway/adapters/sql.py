"""Small SQL helpers shared by the repositories (both dialects: SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from hibiki_runtime.db import dialect_insert
from sqlalchemy import ColumnElement, Table, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession


def insert_ignoring_duplicates(session: AsyncSession, table: Table, key: list[str], **values: Any) -> Any:
    """INSERT … ON CONFLICT DO NOTHING; the result's rowcount tells whether the row was new."""
    return dialect_insert(session, table).values(**values).on_conflict_do_nothing(index_elements=key)


def among(session: AsyncSession, column: ColumnElement[Any], values: Collection[Any]) -> ColumnElement[bool]:
    """`column IN (values)`; on PostgreSQL `column = ANY(:array)`, one parameter however many values.

    An expanding IN is rendered again at every execution with one (cast) parameter per value, which costs
    milliseconds of CPU for the hundreds of values of a consumed batch; the array form is compiled once.
    """
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type), unique=True))
    return column.in_(list(values))

"""Async SQLAlchemy engines (SQLite by default, PostgreSQL by URL) and per-service Alembic migrations."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, overload

from alembic import command
from alembic.config import Config
from sqlalchemy import ColumnElement, Connection, Table, any_, bindparam, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession  # re-exported for services

T = TypeVar("T")


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine; SQLite files get WAL, a busy timeout and enforced foreign keys."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    engine = create_async_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine, PING_IDLE_AFTER_SECONDS)
    return engine


# A pooled connection idle this long is pinged before use (one that was just used is not).
PING_IDLE_AFTER_SECONDS = 5.0


def _ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Ping a pooled connection before use when it sat idle for `idle_seconds` (the server or a proxy may
    have closed it meanwhile); a dead one is replaced by a fresh connection.

    `pool_pre_ping` pings at every checkout, three round trips on asyncpg (BEGIN, ping, ROLLBACK), which on a
    hot path costs more than the transaction it precedes; a connection used milliseconds ago is alive. A
    connection that dies while in use fails its statement once, like with pre-ping, and is replaced.
    """

    @event.listens_for(engine.sync_engine, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise DisconnectionError(f"an idle pooled connection is gone: {error}") from error


def among(
    bind: AsyncSession | AsyncConnection, column: ColumnElement[Any], values: Collection[Any]
) -> ColumnElement[bool]:
    """`column IN (values)`; on PostgreSQL `column = ANY(:array)`, one parameter however many values.

    An expanding IN is rendered again at every execution with one (cast) parameter per value, which costs
    milliseconds of CPU for the hundreds of values of a consumed batch; the array form is compiled once.
    """
    if _dialect_name(bind) == "postgresql":
        return column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(column.type), unique=True))
    return column.in_(list(values))


def dialect_insert(bind: AsyncSession | AsyncConnection, table: Table) -> Any:
    """An INSERT in the bind's dialect, so `.on_conflict_do_nothing()` works on SQLite and PostgreSQL."""
    return (postgresql.insert if _dialect_name(bind) == "postgresql" else sqlite.insert)(table)


def _dialect_name(bind: AsyncSession | AsyncConnection) -> str:
    return (bind.get_bind().dialect if isinstance(bind, AsyncSession) else bind.dialect).name


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite hands back naive ones; everything is stored in UTC)."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class AutocommitConnection:
    """One connection kept open in autocommit mode, for a single statement that sits on a hot path and must be
    durable when it returns (one round trip instead of a pool checkout, BEGIN, statement and COMMIT).

    Statements from concurrent tasks run one after the other (a connection runs one at a time). A failed
    statement closes the connection; the next one opens a fresh connection.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None
        self._turn = asyncio.Lock()

    async def run(self, statement: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async with self._turn:
            if self._connection is None:
                connection = await self._engine.connect()
                self._connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            try:
                return await statement(self._connection)
            except BaseException:
                await self._close()
                raise

    async def close(self) -> None:
        async with self._turn:
            await self._close()

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await asyncio.shield(connection.close())


def engine_of(sessions: async_sessionmaker[AsyncSession]) -> AsyncEngine:
    """The engine a session factory is bound to."""
    engine = sessions.kw.get("bind")
    if not isinstance(engine, AsyncEngine):
        raise TypeError("the session factory is bound to no engine")
    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes after commit (the outbox relay reads them after commit)."""
    return async_sessionmaker(engine, expire_on_commit=False)


# Revision "0001" (outbox and processed-event tables) lives here once; each service's first own revision
# names it as down_revision.
_MIGRATION_LOCK_ID = 0x48494241
RUNTIME_VERSIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(migrations_dir: Path) -> Config:
    """Alembic configuration for a service's migrations folder (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("version_locations", f"{RUNTIME_VERSIONS} {migrations_dir / 'versions'}")
    config.set_main_option("path_separator", "space")
    return config


async def upgrade_to_head(engine: AsyncEngine, migrations_dir: Path) -> None:
    """Apply the service's migrations inside the running event loop."""

    def _upgrade(connection: Connection) -> None:
        config = alembic_config(migrations_dir)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Replicas or Jobs starting together migrate in turn; the lock ends with the transaction.
            await connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        await connection.run_sync(_upgrade)


def run_migrations_online(target_metadata: Any = None) -> None:
    """Body of every service's migrations/env.py: migrate the connection handed over by upgrade_to_head."""
    from alembic import context

    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "run migrations through hibiki_runtime.db.upgrade_to_head (or `<service> migrate`)"
        )
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()

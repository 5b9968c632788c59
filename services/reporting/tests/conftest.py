"""Fixtures shared by reporting's unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hibiki_reporting.entrypoints.main import MIGRATIONS
from hibiki_runtime.db import AsyncSession, create_engine, session_factory, upgrade_to_head
from sqlalchemy.ext.asyncio import async_sessionmaker


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A fresh SQLite database with reporting's migrations applied."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'reporting.db'}")
    await upgrade_to_head(engine, MIGRATIONS)
    yield session_factory(engine)
    await engine.dispose()

"""Fixtures shared by routing's unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hibiki_runtime.db import AsyncSession
from sqlalchemy.ext.asyncio import async_sessionmaker

from services.routing.tests.routing_db import migrated_database


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A fresh SQLite database with routing's migrations applied."""
    engine, sessions = await migrated_database(tmp_path)
    yield sessions
    await engine.dispose()

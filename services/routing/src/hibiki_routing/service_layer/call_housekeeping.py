"""Periodic care of call state: the calls-in-progress gauge and forgetting idle calls."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hibiki_routing.adapters.call_state_repository import count_in_progress, purge_idle
from hibiki_routing.adapters.metrics import RoutingMetrics


async def keep_house(
    sessions: async_sessionmaker[AsyncSession],
    metrics: RoutingMetrics,
    now: datetime,
    *,
    active_window: timedelta,
    retention: timedelta,
) -> int:
    """Purge calls idle longer than `retention`, then set the gauge; returns how many were purged."""
    async with sessions() as session, session.begin():
        purged = await purge_idle(session, now - retention)
        # Counted in the database so that every replica reports the same, rebalance-proof figure.
        metrics.calls_in_progress.set(await count_in_progress(session, now - active_window))
    return purged

"""Retention (保存期間): records older than the configured days are hard-deleted, in small batches.

Each batch is its own short transaction, so the consumers and readers are never blocked for long.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta

from hibiki_runtime.db import AsyncSession
from hibiki_runtime.outbox import processed_events
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from hibiki_reporting.adapters.metrics import ReportingMetrics
from hibiki_reporting.adapters.repository import ReportRepository
from hibiki_reporting.domain.calendar import report_date

log = logging.getLogger("hibiki.reporting.retention")


class RetentionJob:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        metrics: ReportingMetrics,
        *,
        days: int,
        batch_size: int,
        consumers: Sequence[str],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._metrics = metrics
        self._days = days
        self._batch = batch_size
        self._consumers = consumers
        self._now = now

    def cutoff(self) -> date:
        """The oldest day that is kept: today (Asia/Tokyo) minus the retention days."""
        return report_date(self._now()) - timedelta(days=self._days)

    async def run_once(self) -> int:
        """Delete everything older than the cutoff; returns the number of rows deleted."""
        cutoff, total = self.cutoff(), 0
        for kind in ("call", "sms"):
            while True:
                async with self._sessions() as session, session.begin():
                    deleted = await ReportRepository(session).delete_batch_before(kind, cutoff, self._batch)
                if not deleted:
                    break
                for table, rows in deleted.items():
                    self._metrics.retention_deleted.labels(table).inc(rows)
                    total += rows
        total += await self._forget_processed_events(self._now() - timedelta(days=self._days + 1))
        if total:
            log.info("retention deleted %d rows older than %s", total, cutoff.isoformat())
        return total

    async def _forget_processed_events(self, before: datetime) -> int:
        # Ingest claims and ignores events older than the retention, so these ids are no longer needed.
        total = 0
        for consumer in self._consumers:
            while True:
                async with self._sessions() as session, session.begin():
                    ids = (
                        await session.scalars(
                            select(processed_events.c.event_id)
                            .where(processed_events.c.consumer == consumer)
                            .where(processed_events.c.processed_at < before)
                            .limit(self._batch)
                        )
                    ).all()
                    if ids:
                        await session.execute(
                            delete(processed_events)
                            .where(processed_events.c.consumer == consumer)
                            .where(processed_events.c.event_id.in_(ids))
                        )
                if not ids:
                    break
                self._metrics.retention_deleted.labels(processed_events.name).inc(len(ids))
                total += len(ids)
        return total

"""Retention (保存期間): personal data older than the configured days is hard-deleted, in small batches.

Deleted: messages in a final state (recipient, box name, text, URL, rendered text) whose last change is older
than the period, with their parts and short links, and delivery receipts received before it. Kept: messages
still being worked on (not final), the opt-out list (a recipient's own refusal must outlive retention) and the
box revisions (tenant configuration). Each batch is its own short transaction, so dispatch and receipts are
never blocked for long; deleted rows cannot be recovered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hibiki_sms_gateway.adapters.metrics import SmsMetrics
from hibiki_sms_gateway.adapters.retention_repository import RETENTION_TABLES, RetentionRepository
from hibiki_sms_gateway.adapters.tables import sms_messages, sms_receipts
from hibiki_sms_gateway.domain.lifecycle import TERMINAL

log = logging.getLogger("hibiki.sms.retention")


class RetentionJob:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        metrics: SmsMetrics,
        *,
        days: int,
        batch_size: int,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._metrics = metrics
        self._days = days
        self._batch = batch_size
        self._now = now
        for table in RETENTION_TABLES:  # every series from 0, so increase() sees the first deletions
            metrics.retention_deleted.labels(table)

    def cutoff(self) -> datetime:
        """Rows last changed (messages) or received (receipts) before this instant are deleted."""
        return self._now() - timedelta(days=self._days)

    async def run_once(self) -> int:
        """Delete everything older than the cutoff; returns the number of rows deleted."""
        cutoff, total = self.cutoff(), 0
        for state in sorted(TERMINAL):
            while True:
                async with self._sessions.begin() as session:
                    deleted = await RetentionRepository(session).delete_messages_before(
                        state, cutoff, self._batch
                    )
                total += self._count(deleted)
                if deleted.get(sms_messages.name, 0) < self._batch:
                    break
                await asyncio.sleep(0)  # let dispatch and receipts run between batches
        while True:
            async with self._sessions.begin() as session:
                receipts = await RetentionRepository(session).delete_receipts_before(cutoff, self._batch)
            total += self._count({sms_receipts.name: receipts})
            if receipts < self._batch:
                break
            await asyncio.sleep(0)
        self._metrics.retention_completed.set(self._now().timestamp())
        if total:
            log.info("retention deleted %d rows older than %s", total, cutoff.isoformat())
        return total

    def _count(self, deleted: dict[str, int]) -> int:
        for table, rows in deleted.items():
            if rows:
                self._metrics.retention_deleted.labels(table).inc(rows)
        return sum(deleted.values())

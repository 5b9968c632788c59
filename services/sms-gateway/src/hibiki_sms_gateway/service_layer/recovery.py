"""The policy for submissions whose outcome is uncertain after a crash.

A message still SUBMITTING long after any live attempt could have ended (the submit budget) was cut off by a
crash between "persisted as submitting" and "recorded the carrier's answer". The SMSC may or may not have it,
so it is never resubmitted automatically (a duplicate SMS is worse than a missing one and the tenant's support
can resend): it becomes UNCERTAIN, SmsFailed(reason="uncertain_after_crash") is produced, and
hibiki_sms_gateway_uncertain_submissions_total{cause="crash"} counts it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hibiki_runtime.outbox import enqueue_all
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hibiki_sms_gateway.adapters import results
from hibiki_sms_gateway.adapters.message_repository import MessageRepository
from hibiki_sms_gateway.adapters.metrics import SmsMetrics
from hibiki_sms_gateway.domain.lifecycle import MessageState, advance

log = logging.getLogger("hibiki.sms.recovery")
UNCERTAIN_AFTER_CRASH = "uncertain_after_crash"


class UncertainSweeper:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        metrics: SmsMetrics,
        notify: Callable[[], None],
        *,
        older_than: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._metrics = metrics
        self._notify = notify
        self._older_than = older_than
        self._clock = clock

    async def sweep(self) -> int:
        """Settle stale SUBMITTING messages as uncertain; returns how many were settled."""
        now = self._clock()
        settled = 0
        async with self._sessions.begin() as session:
            messages = MessageRepository(session)
            for message in await messages.stuck_in(MessageState.SUBMITTING, now - self._older_than):
                if not await messages.move(
                    message.request_id,
                    MessageState.SUBMITTING,
                    advance(MessageState.SUBMITTING, MessageState.UNCERTAIN),
                    now=now,
                    reason=UNCERTAIN_AFTER_CRASH,
                ):
                    continue
                detail = "the service stopped while submitting; not resent to avoid a duplicate SMS"
                failed = results.failed(
                    message, UNCERTAIN_AFTER_CRASH, detail, message.attempts, message.request_id, now
                )
                await enqueue_all(session, [failed])
                self._metrics.uncertain.labels("crash").inc()
                self._metrics.results.labels("failed", UNCERTAIN_AFTER_CRASH).inc()
                settled += 1
        if settled:
            self._notify()
            log.warning("%d submissions were uncertain after a crash and reported as failed", settled)
        return settled

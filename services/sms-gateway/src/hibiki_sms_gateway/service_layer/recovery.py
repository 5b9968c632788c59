"""What happens to messages whose sending process stopped (kill -9, a lost node).

Every process heartbeats (hibiki_runtime.instances); a message records the process that sends it.
- QUEUED messages of a stopped process never went on the wire: another process takes them over and sends
  them (so does their own process when a send of one never started, e.g. the database was away).
- SUBMITTING messages of a stopped process may or may not be at the SMSC. At most one SMPP window of them
  exists per process (a message is marked just before its parts go out). Their receipts tell the truth
  (ReceiptBook.reconcile matches them by recipient and time); those still unknown after the grace period
  (counted from the mark, and from this process's start: receipts the SMSC kept come after the bind)
  become UNCERTAIN: never resubmitted automatically (a duplicate SMS is worse than a missing one, and the
  tenant's support can resend), reported as SmsFailed(reason="uncertain_after_crash") and counted in
  hibiki_sms_gateway_uncertain_submissions_total{cause="crash"}. A receipt arriving later still settles them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hibiki_runtime.instances import InstanceRepository
from hibiki_runtime.outbox import enqueue_all
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hibiki_sms_gateway.adapters import results
from hibiki_sms_gateway.adapters.message_repository import MessageRepository, StateChange
from hibiki_sms_gateway.adapters.metrics import SmsMetrics
from hibiki_sms_gateway.adapters.tables import sms_instances
from hibiki_sms_gateway.domain.lifecycle import MessageState, advance
from hibiki_sms_gateway.domain.sms_message import SmsMessage

log = logging.getLogger("hibiki.sms.recovery")
UNCERTAIN_AFTER_CRASH = "uncertain_after_crash"


class Recovery:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        metrics: SmsMetrics,
        notify: Callable[[], None],
        instance_id: str,
        *,
        instance_timeout: timedelta,
        reconcile_grace: timedelta,
        stuck_after: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._metrics = metrics
        self._notify = notify
        self._instance_id = instance_id
        self._instance_timeout = instance_timeout
        self._reconcile_grace = reconcile_grace
        self._stuck_after = stuck_after
        self._clock = clock
        # Receipts reach a process only once its receiving sessions are bound (an SMSC keeps them meanwhile
        # and sends them after the bind): the grace counts from this process's start too.
        self._started = clock()

    async def take_over_queued(self, own_stalled_after: timedelta) -> list[SmsMessage]:
        """Queued messages of stopped processes (and this one's that never started sending), now this
        process's, to be sent."""
        now = self._clock()
        async with self._sessions.begin() as session:
            live = await InstanceRepository(session, sms_instances).live(now - self._instance_timeout)
            taken = await MessageRepository(session).take_over_queued(
                live | {self._instance_id}, self._instance_id, now, own_stalled_before=now - own_stalled_after
            )
        if taken:
            self._metrics.taken_over.inc(len(taken))
            log.warning("took over %d queued messages of stopped senders; sending them", len(taken))
        return taken

    async def sweep(self) -> int:
        """Settle as uncertain the submitting messages no process will finish; returns how many."""
        now = self._clock()
        async with self._sessions.begin() as session:
            live = await InstanceRepository(session, sms_instances).live(now - self._instance_timeout)
            messages = MessageRepository(session)
            receiving_long_enough = now - self._started >= self._reconcile_grace
            orphans = await messages.submitting_without_owner(
                live,
                orphaned_before=now - (self._reconcile_grace if receiving_long_enough else self._stuck_after),
                stuck_before=now - self._stuck_after,
            )
            settled = await messages.lock_in_state([m.request_id for m in orphans], MessageState.SUBMITTING)
            uncertain = advance(MessageState.SUBMITTING, MessageState.UNCERTAIN)
            chosen = [m for m in orphans if m.request_id in settled]
            await messages.change_states(
                [
                    StateChange(
                        m.request_id,
                        MessageState.SUBMITTING,
                        uncertain,
                        UNCERTAIN_AFTER_CRASH,
                        m.attempts,
                        now,
                    )
                    for m in chosen
                ]
            )
            detail = "the service stopped while submitting; not resent to avoid a duplicate SMS"
            await enqueue_all(
                session,
                [
                    results.failed(m, UNCERTAIN_AFTER_CRASH, detail, m.attempts, m.request_id, now)
                    for m in chosen
                ],
            )
        if chosen:
            self._metrics.uncertain.labels("crash").inc(len(chosen))
            self._metrics.results.labels("failed", UNCERTAIN_AFTER_CRASH).inc(len(chosen))
            self._notify()
            log.warning("%d submissions were uncertain after a crash and reported as failed", len(chosen))
        return len(chosen)

"""Delivery receipts: stored first (they can beat the acceptance commit), then matched to message parts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from hibiki_runtime.outbox import enqueue_all
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hibiki_sms_gateway.adapters import results
from hibiki_sms_gateway.adapters.message_repository import MessageRepository
from hibiki_sms_gateway.adapters.metrics import SmsMetrics
from hibiki_sms_gateway.domain.lifecycle import MessageState, advance
from hibiki_sms_gateway.domain.receipts import Receipt, outcome_of

# Receipts that match no part after this long belong to no message of ours (or to a purged one).
_MATCH_HORIZON = timedelta(days=3)


class ReceiptBook:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        metrics: SmsMetrics,
        notify: Callable[[], None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._metrics = metrics
        self._notify = notify
        self._clock = clock

    async def record(self, receipt: Receipt) -> None:
        """Store a receipt from a connector, then settle its message if every part has reported.

        Returns once the receipt is committed: only then may the connector acknowledge it to the carrier.
        A receipt sent again (its acknowledgement was lost) is stored once and settles nothing twice.
        """
        async with self._sessions.begin() as session:
            await MessageRepository(session).add_receipt(receipt, self._clock())
        await self.apply([receipt.carrier_message_id])

    async def apply_pending(self) -> None:
        """Match receipts that arrived before their part was known (run periodically)."""
        async with self._sessions() as session:
            pending = await MessageRepository(session).unapplied_receipt_ids(self._clock() - _MATCH_HORIZON)
        await self.apply(pending)

    async def apply(self, carrier_message_ids: Sequence[str]) -> None:
        settled: set[str] = set()
        for carrier_message_id in carrier_message_ids:
            async with self._sessions.begin() as session:
                messages = MessageRepository(session)
                request_id = await messages.request_of_part(carrier_message_id)
                if request_id is None or request_id in settled:
                    continue
                settled.add(request_id)
                await self._settle(messages, session, request_id)
        self._notify()

    async def _settle(self, messages: MessageRepository, session: AsyncSession, request_id: str) -> None:
        message = await messages.get(request_id)
        part_ids = await messages.part_ids(request_id)
        stored = await messages.receipts_for(part_ids)
        if message is None or not stored:
            return
        if message.state != MessageState.ACCEPTED:
            # Late or duplicate receipts (message already settled or failed): nothing more to report.
            await messages.mark_receipts_applied(list(stored))
            return
        outcome = outcome_of([stored[pid][0] if pid in stored else None for pid in part_ids])
        if outcome is None:
            return
        now = self._clock()
        target = advance(
            MessageState.ACCEPTED, MessageState.DELIVERED if outcome.delivered else MessageState.UNDELIVERED
        )
        if not await messages.move(request_id, MessageState.ACCEPTED, target, now=now, reason=outcome.state):
            return
        if outcome.delivered:
            result = results.delivered(message, part_ids, outcome.state, now)
        else:
            result = results.undelivered(message, part_ids, outcome.state, outcome.error_code, now)
        await enqueue_all(session, [result])
        await messages.mark_receipts_applied(list(stored))
        self._metrics.results.labels(target.value, outcome.state).inc()
        self._metrics.receipt_latency.labels(message.carrier or "unknown", outcome.state).observe(
            max(0.0, (now - message.updated_at).total_seconds())
        )

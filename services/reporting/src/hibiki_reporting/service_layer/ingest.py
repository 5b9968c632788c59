"""Consumers of the four topics: store each new fact, then fold the records it touches again.

One consumed batch is one transaction: claim each event id (a redelivery is skipped), refuse events
whose tenant differs from the record's tenant (DLQ), add the facts, and re-materialize every touched
call and SMS from all of its facts, so arrival order never matters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hibiki_runtime.db import AsyncSession
from hibiki_runtime.events import CALL_ACTIONS, CALL_EVENTS, SMS_REQUESTS
from hibiki_runtime.kafka import Delivery, Rejection
from hibiki_runtime.outbox import claim_event
from sqlalchemy.ext.asyncio import async_sessionmaker

from hibiki_reporting.adapters.events import occurred_at
from hibiki_reporting.adapters.metrics import ReportingMetrics
from hibiki_reporting.adapters.repository import ReportRepository
from hibiki_reporting.domain.calendar import report_date
from hibiki_reporting.domain.calls import materialize_call
from hibiki_reporting.domain.sms import materialize_sms

CALL, SMS = "call", "sms"  # lock order: calls before SMS, each by id, so batches never deadlock


@dataclass(frozen=True)
class _Touch:
    """A record an event adds a fact to."""

    kind: str
    key: str


def consumer_name(topic: str) -> str:
    # Routing derives action and SMS-request event ids from the same call id + step: dedupe per topic.
    return f"reporting:{topic}"


def _touches(topic: str, message: Any) -> list[_Touch]:
    """The records an event adds a fact to: an SMS request also tells its call that an SMS was sent."""
    if topic in (CALL_EVENTS, CALL_ACTIONS):
        return [_Touch(CALL, message.call_id)]
    touches = [_Touch(SMS, message.request_id)]
    if topic == SMS_REQUESTS and message.sms_requested.call_id:
        touches.insert(0, _Touch(CALL, message.sms_requested.call_id))
    return touches


def _missing_key(topic: str, message: Any) -> str:
    key = "call_id" if topic in (CALL_EVENTS, CALL_ACTIONS) else "request_id"
    return "" if getattr(message, key) else f"{key} is empty"


class Ingestor:
    """Batch handlers for runtime.consume(); one instance serves all four topics."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        metrics: ReportingMetrics,
        *,
        retention_days: int,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._metrics = metrics
        self._retention_days = retention_days
        self._now = now

    async def __call__(self, deliveries: Sequence[Delivery]) -> Sequence[Rejection]:
        """The batch handler of the one subscriber to all four topics: each topic's records in turn."""
        rejections: list[Rejection] = []
        for topic in dict.fromkeys(d.topic for d in deliveries):
            rejections += await self.ingest(topic, [d for d in deliveries if d.topic == topic])
        return rejections

    async def ingest(self, topic: str, deliveries: Sequence[Delivery]) -> list[Rejection]:
        rejections: list[Rejection] = []
        accepted: list[Delivery] = []
        for delivery in deliveries:
            problem = _missing_key(topic, delivery.event.message)
            if problem:
                rejections.append(Rejection(delivery, "invalid_event", problem))
            else:
                accepted.append(delivery)
        async with self._sessions() as session, session.begin():
            repository = ReportRepository(session)
            rejections += await self._apply(topic, repository, accepted)
        if accepted:
            self._metrics.applied(max(occurred_at(d.event.message) for d in accepted).timestamp())
        return rejections

    async def _apply(
        self, topic: str, repository: ReportRepository, deliveries: Sequence[Delivery]
    ) -> list[Rejection]:
        horizon = self._retention_horizon()
        fresh: list[Delivery] = []
        stale: list[Delivery] = []
        for delivery in deliveries:
            is_fresh = report_date(occurred_at(delivery.event.message)) >= horizon
            (fresh if is_fresh else stale).append(delivery)
        plan = [(d, _touches(topic, d.event.message)) for d in fresh]
        owners = await self._lock(repository, plan)
        rejections: list[Rejection] = []
        touched: set[_Touch] = set()
        for delivery, touches in plan:
            foreign = [t for t in touches if owners[t] != delivery.event.tenant_id]
            if foreign:
                rejections.append(
                    Rejection(
                        delivery,
                        "cross_tenant",
                        f"{foreign[0].kind} {foreign[0].key} belongs to another tenant",
                    )
                )
                continue
            if not await claim_event(repository.session, consumer_name(topic), delivery.event.event_id):
                continue
            at = occurred_at(delivery.event.message)
            for touch in touches:
                add_fact = repository.add_call_fact if touch.kind == CALL else repository.add_sms_fact
                await add_fact(touch.key, delivery, at)
                touched.add(touch)
        for touch in sorted(touched, key=lambda t: (t.kind, t.key)):
            await self._fold(repository, touch, owners[touch])
        # Stale events (older than retention) are claimed too, so they are never applied later.
        for delivery in stale:
            await claim_event(repository.session, consumer_name(topic), delivery.event.event_id)
        return rejections

    async def _lock(
        self, repository: ReportRepository, plan: list[tuple[Delivery, list[_Touch]]]
    ) -> dict[_Touch, str]:
        first: dict[_Touch, Delivery] = {}
        for delivery, touches in plan:
            for touch in touches:
                first.setdefault(touch, delivery)
        owners: dict[_Touch, str] = {}
        for touch in sorted(first, key=lambda t: (t.kind, t.key)):
            delivery = first[touch]
            lock = repository.lock_call if touch.kind == CALL else repository.lock_sms
            owners[touch] = await lock(
                touch.key, delivery.event.tenant_id, occurred_at(delivery.event.message)
            )
        return owners

    async def _fold(self, repository: ReportRepository, touch: _Touch, tenant_id: str) -> None:
        if touch.kind == CALL:
            facts = await repository.call_facts(touch.key)
            if facts:  # a PromptFinished alone tells nothing yet
                await repository.save_call(tenant_id, materialize_call(touch.key, facts))
        else:
            await repository.save_sms(
                tenant_id, materialize_sms(touch.key, await repository.sms_facts(touch.key))
            )

    def _retention_horizon(self) -> date:
        return report_date(self._now()) - timedelta(days=self._retention_days)

"""Consumers of the four topics: store each new fact, then fold the records it touches again.

Each topic's part of a consumed batch is one transaction of a fixed number of statements: lock (and
create) every record the batch touches, refuse events whose tenant differs from the record's tenant
(DLQ), claim the event ids (a redelivery is skipped), add the facts, and re-materialize every touched
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
from hibiki_runtime.outbox import claim_events, first_claimed
from sqlalchemy.ext.asyncio import async_sessionmaker

from hibiki_reporting.adapters.events import call_fact, occurred_at, sms_fact
from hibiki_reporting.adapters.metrics import ReportingMetrics
from hibiki_reporting.adapters.repository import NewFact, ReportRepository, Sighting
from hibiki_reporting.domain.calendar import report_date
from hibiki_reporting.domain.calls import materialize_call
from hibiki_reporting.domain.facts import CallFact, SmsFact
from hibiki_reporting.domain.sms import materialize_sms

CALL, SMS = "call", "sms"  # lock order: calls before SMS, each by id, so batches never deadlock


@dataclass(frozen=True)
class _Touch:
    """A record an event adds a fact to."""

    kind: str
    key: str


@dataclass(frozen=True)
class _Event:
    """A consumed event, when it happened, and the records it adds a fact to."""

    delivery: Delivery
    at: datetime
    touches: list[_Touch]

    @property
    def event_id(self) -> str:
        return self.delivery.event.event_id

    @property
    def tenant_id(self) -> str:
        return self.delivery.event.tenant_id


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
        accepted: list[_Event] = []
        for delivery in deliveries:
            message = delivery.event.message
            problem = _missing_key(topic, message)
            if problem:
                rejections.append(Rejection(delivery, "invalid_event", problem))
            else:
                accepted.append(_Event(delivery, occurred_at(message), _touches(topic, message)))
        async with self._sessions() as session, session.begin():
            rejections += await self._apply(topic, ReportRepository(session), accepted)
        if accepted:
            self._metrics.applied(max(event.at for event in accepted).timestamp())
        return rejections

    async def _apply(self, topic: str, repository: ReportRepository, events: list[_Event]) -> list[Rejection]:
        horizon = self._retention_horizon()
        fresh = [event for event in events if report_date(event.at) >= horizon]
        stale = [event for event in events if report_date(event.at) < horizon]
        owners, created = await self._lock(repository, fresh)
        rejections: list[Rejection] = []
        owned: list[_Event] = []
        for event in fresh:
            foreign = [touch for touch in event.touches if owners[touch] != event.tenant_id]
            if foreign:
                detail = f"{foreign[0].kind} {foreign[0].key} belongs to another tenant"
                rejections.append(Rejection(event.delivery, "cross_tenant", detail))
            else:
                owned.append(event)
        # Stale events (older than retention) are claimed too, so they are never applied later. Ids are
        # claimed in sorted order so that batches sharing stale ids wait for each other, never deadlock.
        claimed = await claim_events(
            repository.session, consumer_name(topic), sorted(e.event_id for e in [*owned, *stale])
        )
        new = first_claimed(owned, claimed, lambda event: event.event_id)
        touched = {touch for event in new for touch in event.touches}
        # Records created by this batch have no stored facts: only the others are read back, before this
        # batch's facts are added; those are folded from memory.
        calls, sms = await self._stored_facts(repository, touched - created)
        await self._add_facts(repository, new)
        _add_batch_facts(topic, new, calls, sms)
        await self._save(repository, touched, owners, calls, sms)
        return rejections

    async def _lock(
        self, repository: ReportRepository, events: list[_Event]
    ) -> tuple[dict[_Touch, str], set[_Touch]]:
        """The owner of every record the events touch, and the records created for the first event's tenant.

        Each record stays locked until commit.
        """
        first: dict[_Touch, Sighting] = {}
        for event in events:
            for touch in event.touches:
                first.setdefault(touch, Sighting(touch.key, event.tenant_id, event.at))
        owners: dict[_Touch, str] = {}
        created: set[_Touch] = set()
        for kind, lock in ((CALL, repository.lock_calls), (SMS, repository.lock_sms)):
            locked = await lock([seen for touch, seen in first.items() if touch.kind == kind])
            owners.update({_Touch(kind, key): tenant for key, tenant in locked.owners.items()})
            created.update(_Touch(kind, key) for key in locked.created)
        return owners, created

    @staticmethod
    async def _stored_facts(
        repository: ReportRepository, records: set[_Touch]
    ) -> tuple[dict[str, list[CallFact]], dict[str, list[SmsFact]]]:
        calls = await repository.call_facts_of(sorted(t.key for t in records if t.kind == CALL))
        sms = await repository.sms_facts_of(sorted(t.key for t in records if t.kind == SMS))
        return calls, sms

    @staticmethod
    async def _add_facts(repository: ReportRepository, events: list[_Event]) -> None:
        facts: dict[str, list[NewFact]] = {CALL: [], SMS: []}
        for event in events:
            for touch in event.touches:
                facts[touch.kind].append(NewFact(touch.key, event.delivery, event.at))
        await repository.add_call_facts(facts[CALL])
        await repository.add_sms_facts(facts[SMS])

    @staticmethod
    async def _save(
        repository: ReportRepository,
        touched: set[_Touch],
        owners: dict[_Touch, str],
        calls: dict[str, list[CallFact]],
        sms: dict[str, list[SmsFact]],
    ) -> None:
        """Materialize every touched record again from all of its facts, so arrival order never matters."""
        call_ids = sorted(t.key for t in touched if t.kind == CALL and t.key in calls)
        request_ids = sorted(t.key for t in touched if t.kind == SMS)
        await repository.save_calls(
            [(owners[_Touch(CALL, key)], materialize_call(key, calls[key])) for key in call_ids]
        )
        await repository.save_sms(
            [(owners[_Touch(SMS, key)], materialize_sms(key, sms[key])) for key in request_ids]
        )

    def _retention_horizon(self) -> date:
        return report_date(self._now()) - timedelta(days=self._retention_days)


def _add_batch_facts(
    topic: str, events: list[_Event], calls: dict[str, list[CallFact]], sms: dict[str, list[SmsFact]]
) -> None:
    """Add the facts of the batch's events to those read back, as a read-back after adding them would."""
    for event in events:
        message = event.delivery.event.message
        for touch in event.touches:
            if touch.kind == SMS:
                sms.setdefault(touch.key, []).append(sms_fact(topic, message))
            elif (fact := call_fact(topic, message)) is not None:  # a PromptFinished tells nothing
                calls.setdefault(touch.key, []).append(fact)

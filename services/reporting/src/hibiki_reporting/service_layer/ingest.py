"""Consumers of the four topics: store each new fact, then fold the records it touches again.

Each topic's part of a consumed batch is one transaction of a fixed number of statements: lock (and
create) every record the batch touches, refuse events whose tenant differs from the record's tenant
(DLQ), claim the event ids (a redelivery is skipped), add the facts, and re-materialize every touched
call and SMS from all of its facts, so arrival order never matters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta

from hibiki_runtime.consumer import Inbound, Rejection
from hibiki_runtime.db import AsyncSession
from hibiki_runtime.unit_of_work import ConsumerUnitOfWork
from sqlalchemy.ext.asyncio import async_sessionmaker

from hibiki_reporting.adapters.metrics import ReportingMetrics
from hibiki_reporting.adapters.repository import NewFact, ReportRepository, Sighting
from hibiki_reporting.domain.calendar import report_date
from hibiki_reporting.domain.calls import materialize_call
from hibiki_reporting.domain.facts import CallFact, SmsFact
from hibiki_reporting.domain.observations import Observation, RecordKind, Touch
from hibiki_reporting.domain.sms import materialize_sms

Item = Inbound[Observation]
# Lock order: calls before SMS, each by id, so batches never deadlock.
_LOCK_ORDER = (RecordKind.CALL, RecordKind.SMS)


def consumer_name(topic: str) -> str:
    # Routing derives action and SMS-request event ids from the same call id + step: dedupe per topic.
    return f"reporting:{topic}"


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

    async def __call__(self, items: Sequence[Item]) -> Sequence[Rejection]:
        """The batch handler of the one subscriber to all four topics: each topic's items in turn."""
        rejections: list[Rejection] = []
        for topic in dict.fromkeys(item.topic for item in items):
            rejections += await self.ingest(topic, [item for item in items if item.topic == topic])
        return rejections

    async def ingest(self, topic: str, items: Sequence[Item]) -> list[Rejection]:
        async with ConsumerUnitOfWork(self._sessions, consumer_name(topic)) as work:
            await self._apply(work, ReportRepository(work.session), items)
        if items:
            self._metrics.applied(max(item.occurred_at for item in items).timestamp())
        return work.rejections

    async def _apply(
        self, work: ConsumerUnitOfWork, repository: ReportRepository, items: Sequence[Item]
    ) -> None:
        horizon = self._retention_horizon()
        fresh = [item for item in items if report_date(item.occurred_at) >= horizon]
        owners, created = await self._lock(repository, fresh)
        owned: list[Item] = []
        for item in fresh:
            foreign = [touch for touch in item.command.touches if owners[touch] != item.tenant_id]
            if foreign:
                work.reject(
                    item, "cross_tenant", f"{foreign[0].kind} {foreign[0].key} belongs to another tenant"
                )
            else:
                owned.append(item)
        # Stale events (older than retention) are claimed too, so they are never applied later.
        stale = [item for item in items if report_date(item.occurred_at) < horizon]
        owned_ids = {id(item) for item in owned}
        new = [item for item in await work.claim([*owned, *stale]) if id(item) in owned_ids]
        touched = {touch for item in new for touch in item.command.touches}
        # Records created by this batch have no stored facts: only the others are read back, before this
        # batch's facts are added; those are folded from memory.
        calls, sms = await self._stored_facts(repository, touched - created)
        await self._add_facts(repository, new)
        _add_batch_facts(new, calls, sms)
        await self._save(repository, touched, owners, calls, sms)

    async def _lock(
        self, repository: ReportRepository, items: Sequence[Item]
    ) -> tuple[dict[Touch, str], set[Touch]]:
        """The owner of every record the items touch, and the records created for the first item's tenant.

        Each record stays locked until commit.
        """
        first: dict[Touch, Sighting] = {}
        for item in items:
            for touch in item.command.touches:
                first.setdefault(touch, Sighting(touch.key, item.tenant_id, item.occurred_at))
        owners: dict[Touch, str] = {}
        created: set[Touch] = set()
        locks = {RecordKind.CALL: repository.lock_calls, RecordKind.SMS: repository.lock_sms}
        for kind in _LOCK_ORDER:
            locked = await locks[kind]([seen for touch, seen in first.items() if touch.kind == kind])
            owners.update({Touch(kind, key): tenant for key, tenant in locked.owners.items()})
            created.update(Touch(kind, key) for key in locked.created)
        return owners, created

    @staticmethod
    async def _stored_facts(
        repository: ReportRepository, records: set[Touch]
    ) -> tuple[dict[str, list[CallFact]], dict[str, list[SmsFact]]]:
        calls = await repository.call_facts_of(sorted(t.key for t in records if t.kind == RecordKind.CALL))
        sms = await repository.sms_facts_of(sorted(t.key for t in records if t.kind == RecordKind.SMS))
        return calls, sms

    @staticmethod
    async def _add_facts(repository: ReportRepository, items: Sequence[Item]) -> None:
        facts: dict[RecordKind, list[NewFact]] = {RecordKind.CALL: [], RecordKind.SMS: []}
        for item in items:
            for touch in item.command.touches:
                facts[touch.kind].append(NewFact(touch.key, item))
        await repository.add_call_facts(facts[RecordKind.CALL])
        await repository.add_sms_facts(facts[RecordKind.SMS])

    @staticmethod
    async def _save(
        repository: ReportRepository,
        touched: set[Touch],
        owners: dict[Touch, str],
        calls: dict[str, list[CallFact]],
        sms: dict[str, list[SmsFact]],
    ) -> None:
        """Materialize every touched record again from all of its facts, so arrival order never matters."""
        call_ids = sorted(t.key for t in touched if t.kind == RecordKind.CALL and t.key in calls)
        request_ids = sorted(t.key for t in touched if t.kind == RecordKind.SMS)
        await repository.save_calls(
            [(owners[Touch(RecordKind.CALL, key)], materialize_call(key, calls[key])) for key in call_ids]
        )
        await repository.save_sms(
            [(owners[Touch(RecordKind.SMS, key)], materialize_sms(key, sms[key])) for key in request_ids]
        )

    def _retention_horizon(self) -> date:
        return report_date(self._now()) - timedelta(days=self._retention_days)


def _add_batch_facts(
    items: Sequence[Item], calls: dict[str, list[CallFact]], sms: dict[str, list[SmsFact]]
) -> None:
    """Add the facts of the batch's items to those read back, as a read-back after adding them would."""
    for item in items:
        observation = item.command
        for touch in observation.touches:
            if touch.kind is RecordKind.SMS and observation.sms_fact is not None:
                sms.setdefault(touch.key, []).append(observation.sms_fact)
            elif touch.kind is RecordKind.CALL and observation.call_fact is not None:
                calls.setdefault(touch.key, []).append(
                    observation.call_fact
                )  # a finished prompt tells nothing

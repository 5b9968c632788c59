"""Read side: daily figures, funnel, call lists, the caller trace and finalization, scoped by tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from hibiki_runtime.db import AsyncSession
from sqlalchemy.ext.asyncio import async_sessionmaker

from hibiki_reporting.adapters.report_reader import ReportReader
from hibiki_reporting.adapters.tables import call_records, sms_records
from hibiki_reporting.domain.activity import Activity, hourly_activity
from hibiki_reporting.domain.calls import CallOutcome, CallRecord
from hibiki_reporting.domain.csv_export import CsvKind
from hibiki_reporting.domain.figures import (
    DailyFigures,
    RouteFunnelRow,
    as_finalized,
    daily_figures,
    with_finalization,
)
from hibiki_reporting.domain.finalization import Finalization, FinalizationSchedule
from hibiki_reporting.domain.link_clicks import LinkClickRow
from hibiki_reporting.domain.sms import SmsRecord, as_of
from hibiki_reporting.domain.trace import TraceAnswer, answer_trace
from hibiki_reporting.domain.validation import DayRange

# Days per query when streaming an export: memory stays bounded by one chunk whatever the range.
EXPORT_CHUNK_DAYS = 7
# Calls or SMS per query when streaming a history export.
EXPORT_PAGE_ROWS = 1_000


@dataclass(frozen=True)
class CallTrace:
    call: CallRecord
    sms: list[SmsRecord]


@dataclass(frozen=True)
class Trace:
    answer: TraceAnswer
    calls: list[CallTrace]


class ReportQueries:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        schedule: FinalizationSchedule,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._schedule = schedule
        self._now = now

    async def daily_report(self, tenant_id: str, days: DayRange, dialed: str = "") -> list[DailyFigures]:
        final_through = self._schedule.final_through(self._now())
        async with self._sessions() as session:
            repository = ReportReader(session)
            calls = await repository.call_tallies(tenant_id, days.start, days.end, dialed)
            sms = await repository.sms_tallies(tenant_id, days.start, days.end, dialed)
            late = await self._late_results(repository, tenant_id, days, dialed, final_through)
        live = daily_figures(calls, sms, lambda day: day <= final_through)
        return with_finalization(live, as_finalized(calls, sms, late), final_through)

    async def hourly_activity(self, tenant_id: str, day: date, dialed: str = "") -> Activity:
        """Calls and SMS per Asia/Tokyo hour of one day, adding up to the day's rows of daily_report."""
        final_through = self._schedule.final_through(self._now())
        async with self._sessions() as session:
            repository = ReportReader(session)
            calls = await repository.call_hour_tallies(tenant_id, day, day, dialed)
            sms = await repository.sms_hour_tallies(tenant_id, day, day, dialed)
            days = DayRange(day, day)
            late = await self._late_results(repository, tenant_id, days, dialed, final_through)
        return hourly_activity(day, calls, sms, late)

    async def _late_results(
        self, repository: ReportReader, tenant_id: str, days: DayRange, dialed: str, final_through: date
    ) -> list[tuple[SmsRecord, SmsRecord]]:
        """SMS of final days decided after their day became final (a receipt days later), each paired with
        itself as of that moment."""
        if days.start > final_through:
            return []
        finalized_at = self._schedule.finalized_at
        end = min(days.end, final_through)
        changed = await repository.sms_changed_after(
            tenant_id, days.start, end, dialed, finalized_at(days.start)
        )
        return [
            (record, as_of(record, finalized))
            for record in changed
            if record.status_time > (finalized := finalized_at(record.report_date))
        ]

    async def stream_daily_report(
        self, tenant_id: str, days: DayRange, dialed: str = ""
    ) -> AsyncIterator[DailyFigures]:
        """The daily report in chunks of days, for exports of any length."""
        start = days.start
        while start <= days.end:
            end = min(days.end, start + timedelta(days=EXPORT_CHUNK_DAYS - 1))
            for row in await self.daily_report(tenant_id, DayRange(start, end), dialed):
                yield row
            start = end + timedelta(days=1)

    async def stream_history(
        self, tenant_id: str, days: DayRange, dialed: str, kind: CsvKind
    ) -> AsyncIterator[CallRecord | SmsRecord]:
        """Every call (or SMS request) of the days, oldest first, read EXPORT_PAGE_ROWS at a time."""
        table = call_records if kind is CsvKind.CALLS else sms_records
        after: tuple[datetime, str] | None = None
        while True:
            async with self._sessions() as session:
                page = await ReportReader(session).history_page(
                    table, tenant_id, days.start, days.end, dialed, after, EXPORT_PAGE_ROWS
                )
            for record in page:
                yield record
            if len(page) < EXPORT_PAGE_ROWS:
                return
            last = page[-1]
            after = (last.first_seen, last.call_id if isinstance(last, CallRecord) else last.request_id)

    async def route_funnel(self, tenant_id: str, days: DayRange, dialed: str = "") -> list[RouteFunnelRow]:
        async with self._sessions() as session:
            return await ReportReader(session).funnel(tenant_id, days.start, days.end, dialed)

    async def link_clicks(self, tenant_id: str, days: DayRange, dialed: str = "") -> list[LinkClickRow]:
        async with self._sessions() as session:
            return await ReportReader(session).link_clicks(tenant_id, days.start, days.end, dialed)

    async def list_calls(
        self,
        tenant_id: str,
        days: DayRange,
        *,
        dialed: str,
        caller: str,
        outcome: CallOutcome | None,
        offset: int,
        limit: int,
    ) -> list[CallRecord]:
        async with self._sessions() as session:
            return await ReportReader(session).list_calls(
                tenant_id,
                days.start,
                days.end,
                dialed=dialed,
                caller=caller,
                outcome=outcome,
                offset=offset,
                limit=limit,
            )

    async def trace_caller(self, tenant_id: str, caller: str, days: DayRange) -> Trace:
        """The seed's checklist for "the SMS did not arrive", for one caller number."""
        async with self._sessions() as session:
            repository = ReportReader(session)
            calls = await repository.list_calls(tenant_id, days.start, days.end, caller=caller)
            sms = await repository.sms_of_caller(
                tenant_id, days.start, days.end, [call.call_id for call in calls], caller
            )
        by_call = [CallTrace(call, [s for s in sms if s.call_id == call.call_id]) for call in calls]
        return Trace(answer_trace(calls, sms), by_call)

    def finalization(self, at: datetime | None = None) -> Finalization:
        return self._schedule.status(at or self._now())

"""Read side: daily figures, funnel, call lists, the caller trace and finalization, scoped by tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hibiki_runtime.db import AsyncSession
from sqlalchemy.ext.asyncio import async_sessionmaker

from hibiki_reporting.adapters.report_reader import ReportReader
from hibiki_reporting.domain.calls import CallOutcome, CallRecord
from hibiki_reporting.domain.figures import DailyFigures, RouteFunnelRow, daily_figures
from hibiki_reporting.domain.finalization import Finalization, FinalizationSchedule
from hibiki_reporting.domain.link_clicks import LinkClickRow
from hibiki_reporting.domain.sms import SmsRecord
from hibiki_reporting.domain.trace import TraceAnswer, answer_trace
from hibiki_reporting.domain.validation import DayRange

# Days per query when streaming an export: memory stays bounded by one chunk whatever the range.
EXPORT_CHUNK_DAYS = 7


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
        return daily_figures(calls, sms, lambda day: day <= final_through)

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

"""The read side: tallies for the daily figures, the route funnel, call and SMS lists, all tenant-scoped."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from hibiki_runtime.db import AsyncSession, as_utc
from sqlalchemy import Table, and_, case, func, literal_column, or_, select, tuple_

from hibiki_reporting.adapters.rows import call_record, sms_record
from hibiki_reporting.adapters.tables import call_records, route_funnel, sms_records
from hibiki_reporting.domain.activity import CallHourTally, SmsHourTally
from hibiki_reporting.domain.calls import CallOutcome, CallRecord
from hibiki_reporting.domain.facts import SmsStatus
from hibiki_reporting.domain.figures import CallTally, RouteFunnelRow, SmsTally
from hibiki_reporting.domain.link_clicks import LinkClickRow
from hibiki_reporting.domain.sms import CARRIER_ACCEPTED, SmsRecord


class ReportReader:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def call_tallies(self, tenant_id: str, start: date, end: date, dialed: str) -> list[CallTally]:
        c = call_records.c
        rows = await self.session.execute(
            select(c.report_date, c.dialed_number, c.outcome, func.count())
            .where(_scope(call_records, tenant_id, start, end, dialed))
            .group_by(c.report_date, c.dialed_number, c.outcome)
        )
        return [CallTally(day, number, CallOutcome(outcome), n) for day, number, outcome, n in rows]

    async def sms_tallies(self, tenant_id: str, start: date, end: date, dialed: str) -> list[SmsTally]:
        c = sms_records.c
        reject_reason = case((c.status == SmsStatus.REJECTED.value, c.reason), else_="")
        rows = await self.session.execute(
            select(
                c.report_date, c.dialed_number, c.status, reject_reason, c.recipient_captured, func.count()
            )
            .where(_scope(sms_records, tenant_id, start, end, dialed))
            .group_by(c.report_date, c.dialed_number, c.status, reject_reason, c.recipient_captured)
        )
        return [
            SmsTally(day, number, SmsStatus(st), reason, n, bool(captured))
            for day, number, st, reason, captured, n in rows
        ]

    async def call_hour_tallies(
        self, tenant_id: str, start: date, end: date, dialed: str
    ) -> list[CallHourTally]:
        """Calls per hour of their start (the instant their report day comes from)."""
        c = call_records.c
        hour = self._utc_hour(func.coalesce(c.start_time, c.first_seen))
        rows = await self.session.execute(
            select(hour, func.count())
            .where(_scope(call_records, tenant_id, start, end, dialed))
            .group_by(hour)
        )
        return [CallHourTally(_stored_hour(at), n) for at, n in rows]

    async def sms_hour_tallies(
        self, tenant_id: str, start: date, end: date, dialed: str
    ) -> list[SmsHourTally]:
        """SMS per hour of their request (the instant their report day comes from) and status."""
        c = sms_records.c
        hour = self._utc_hour(func.coalesce(c.request_time, c.first_seen))
        rows = await self.session.execute(
            select(hour, c.status, func.count())
            .where(_scope(sms_records, tenant_id, start, end, dialed))
            .group_by(hour, c.status)
        )
        return [SmsHourTally(_stored_hour(at), SmsStatus(status), n) for at, status, n in rows]

    def _utc_hour(self, instant: Any) -> Any:
        """The UTC hour of a stored instant, truncated in the database. Asia/Tokyo is UTC+9 all year (no
        daylight saving), so a UTC hour is exactly one Tokyo hour; the domain names it (activity.tokyo_hour).
        Literal arguments, not bound ones: PostgreSQL must see the same expression in SELECT and GROUP BY."""
        if self.session.get_bind().dialect.name == "postgresql":
            return func.date_trunc(literal_column("'hour'"), func.timezone(literal_column("'UTC'"), instant))
        # SQLite keeps UTC times as text.
        return func.strftime(literal_column("'%Y-%m-%d %H:00:00'"), instant)

    async def funnel(self, tenant_id: str, start: date, end: date, dialed: str) -> list[RouteFunnelRow]:
        c = route_funnel.c
        reached = func.count()
        rows = (
            await self.session.execute(
                select(
                    c.flow_id,
                    c.route_id,
                    func.max(c.dialed_number).label("dialed_number"),
                    func.max(c.route_name).label("route_name"),
                    reached.label("reached"),
                    func.sum(c.invalid_inputs).label("invalid_inputs"),
                    func.sum(c.timeouts).label("timeouts"),
                    func.sum(case((c.abandoned, 1), else_=0)).label("abandoned"),
                )
                .where(_scope(route_funnel, tenant_id, start, end, dialed))
                # Route ids are unique within a flow only: two flows' "menu" are different routes.
                .group_by(c.flow_id, c.route_id)
                .order_by(reached.desc(), c.flow_id, c.route_id)
            )
        ).all()
        return [
            RouteFunnelRow(
                row.route_id,
                row.route_name,
                row.reached,
                int(row.invalid_inputs or 0),
                int(row.timeouts or 0),
                int(row.abandoned or 0),
                flow_id=row.flow_id,
                dialed_number=row.dialed_number,
            )
            for row in rows
        ]

    async def link_clicks(self, tenant_id: str, start: date, end: date, dialed: str) -> list[LinkClickRow]:
        c = sms_records.c
        accepted = c.status.in_(sorted(status.value for status in CARRIER_ACCEPTED))
        sms_accepted = func.sum(case((accepted, 1), else_=0))
        rows = await self.session.execute(
            select(
                c.report_date,
                c.box_number,
                sms_accepted,
                func.sum(case((and_(accepted, c.clicks > 0), 1), else_=0)),
                func.sum(c.clicks),
            )
            .where(_scope(sms_records, tenant_id, start, end, dialed))
            .group_by(c.report_date, c.box_number)
            .having(or_(sms_accepted > 0, func.sum(c.clicks) > 0))
            .order_by(c.report_date, c.box_number)
        )
        return [
            LinkClickRow(day, box, int(sent or 0), int(clicked or 0), int(clicks or 0))
            for day, box, sent, clicked, clicks in rows
        ]

    async def list_calls(
        self,
        tenant_id: str,
        start: date,
        end: date,
        *,
        dialed: str = "",
        caller: str = "",
        outcome: CallOutcome | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[CallRecord]:
        c = call_records.c
        query = select(call_records).where(_scope(call_records, tenant_id, start, end, dialed))
        if caller:
            query = query.where(c.caller_number == caller)
        if outcome is not None:
            query = query.where(c.outcome == outcome.value)
        query = query.order_by(c.first_seen, c.call_id).offset(offset).limit(limit)
        return [call_record(row) for row in await self.session.execute(query)]

    async def history_page(
        self,
        table: Table,
        tenant_id: str,
        start: date,
        end: date,
        dialed: str,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[CallRecord] | list[SmsRecord]:
        """Calls (`call_records`) or SMS (`sms_records`) in the order they were first seen, a page at a time:
        the page after the record `after` (its first_seen and id), so that an export of any length reads each
        row once."""
        key = table.c.call_id if table is call_records else table.c.request_id
        query = select(table).where(_scope(table, tenant_id, start, end, dialed))
        if after is not None:
            query = query.where(tuple_(table.c.first_seen, key) > tuple_(*after))
        rows = await self.session.execute(query.order_by(table.c.first_seen, key).limit(limit))
        if table is call_records:
            return [call_record(row) for row in rows]
        return [sms_record(row) for row in rows]

    async def sms_of_caller(
        self, tenant_id: str, start: date, end: date, call_ids: Sequence[str], recipient: str
    ) -> list[SmsRecord]:
        c = sms_records.c
        rows = await self.session.execute(
            select(sms_records)
            .where(_scope(sms_records, tenant_id, start, end, ""))
            .where(or_(c.call_id.in_(call_ids), c.recipient == recipient))
            .order_by(c.first_seen, c.request_id)
        )
        return [sms_record(row) for row in rows]

    async def sms_changed_after(
        self, tenant_id: str, start: date, end: date, dialed: str, since: datetime
    ) -> list[SmsRecord]:
        """SMS of the days whose status was last decided after `since` (e.g. a receipt days later)."""
        rows = await self.session.execute(
            select(sms_records)
            .where(_scope(sms_records, tenant_id, start, end, dialed))
            .where(sms_records.c.status_time > since.astimezone(UTC))  # stored in UTC
        )
        return [sms_record(row) for row in rows]


def _stored_hour(value: datetime | str) -> datetime:
    """An hour from _utc_hour as an aware UTC datetime (PostgreSQL: naive UTC; SQLite: text)."""
    return as_utc(datetime.fromisoformat(value) if isinstance(value, str) else value)


def _scope(table: Table, tenant_id: str, start: date, end: date, dialed: str) -> Any:
    c = table.c
    condition = and_(c.tenant_id == tenant_id, c.report_date >= start, c.report_date <= end)
    return and_(condition, c.dialed_number == dialed) if dialed else condition

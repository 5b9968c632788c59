"""The read side: tallies for the daily figures, the route funnel, call and SMS lists, all tenant-scoped."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from hibiki_runtime.db import AsyncSession
from sqlalchemy import Table, and_, case, func, or_, select

from hibiki_reporting.adapters.rows import call_record, sms_record
from hibiki_reporting.adapters.tables import call_records, route_funnel, sms_records
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

    async def funnel(self, tenant_id: str, start: date, end: date, dialed: str) -> list[RouteFunnelRow]:
        c = route_funnel.c
        reached = func.count()
        rows = (
            await self.session.execute(
                select(
                    c.route_id,
                    func.max(c.route_name).label("route_name"),
                    reached.label("reached"),
                    func.sum(c.invalid_inputs).label("invalid_inputs"),
                    func.sum(c.timeouts).label("timeouts"),
                    func.sum(case((c.abandoned, 1), else_=0)).label("abandoned"),
                )
                .where(_scope(route_funnel, tenant_id, start, end, dialed))
                .group_by(c.route_id)
                .order_by(reached.desc(), c.route_id)
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


def _scope(table: Table, tenant_id: str, start: date, end: date, dialed: str) -> Any:
    c = table.c
    condition = and_(c.tenant_id == tenant_id, c.report_date >= start, c.report_date <= end)
    return and_(condition, c.dialed_number == dialed) if dialed else condition

"""Domain records ↔ table rows (JSON columns for the path, abandonment, snapshot and timeline)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from hibiki_runtime.db import as_utc

from hibiki_reporting.domain.calls import (
    AbandonedStage,
    Abandonment,
    CallOutcome,
    CallRecord,
    RouteStep,
)
from hibiki_reporting.domain.facts import MessageSnapshot, SmsStatus
from hibiki_reporting.domain.sms import SmsRecord, StatusChange


def call_row(tenant_id: str, record: CallRecord) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "report_date": record.report_date,
        "dialed_number": record.dialed_number,
        "caller_number": record.caller_number,
        "start_time": record.start_time,
        "end_time": record.end_time,
        "first_seen": record.first_seen,
        "outcome": record.outcome.value,
        "path": [asdict(step) for step in record.path],
        "abandonment": asdict(record.abandonment) if record.abandonment else None,
        "end_reason": record.end_reason,
    }


def call_record(row: Any) -> CallRecord:
    abandonment = row.abandonment
    return CallRecord(
        call_id=row.call_id,
        dialed_number=row.dialed_number,
        caller_number=row.caller_number,
        start_time=as_utc(row.start_time),
        end_time=as_utc(row.end_time),
        first_seen=as_utc(row.first_seen),
        path=tuple(RouteStep(**step) for step in row.path),
        outcome=CallOutcome(row.outcome),
        abandonment=(
            Abandonment(**{**abandonment, "stage": AbandonedStage(abandonment["stage"])})
            if abandonment
            else None
        ),
        end_reason=row.end_reason,
    )


def sms_row(tenant_id: str, record: SmsRecord) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "report_date": record.report_date,
        "call_id": record.call_id,
        "dialed_number": record.dialed_number,
        "recipient": record.recipient,
        "box_number": record.box_number,
        "route_id": record.route_id,
        "request_time": record.request_time,
        "first_seen": record.first_seen,
        "status": record.status.value,
        "reason": record.reason,
        "status_time": record.status_time,
        "carrier": record.carrier,
        "snapshot": asdict(record.snapshot) if record.snapshot else None,
        "timeline": [
            {"at": change.at.isoformat(), "status": change.status.value, "reason": change.reason}
            for change in record.timeline
        ],
        "clicks": record.clicks,
        "first_click_time": record.first_click_time,
        "recipient_captured": record.recipient_captured,
    }


def sms_record(row: Any) -> SmsRecord:
    return SmsRecord(
        request_id=row.request_id,
        call_id=row.call_id,
        dialed_number=row.dialed_number,
        recipient=row.recipient,
        box_number=row.box_number,
        route_id=row.route_id,
        request_time=as_utc(row.request_time),
        first_seen=as_utc(row.first_seen),
        status=SmsStatus(row.status),
        reason=row.reason,
        status_time=as_utc(row.status_time),
        carrier=row.carrier,
        snapshot=MessageSnapshot(**row.snapshot) if row.snapshot else None,
        timeline=tuple(
            StatusChange(datetime.fromisoformat(c["at"]), SmsStatus(c["status"]), c["reason"])
            for c in row.timeline
        ),
        clicks=row.clicks,
        first_click_time=as_utc(row.first_click_time),
        recipient_captured=row.recipient_captured,
    )

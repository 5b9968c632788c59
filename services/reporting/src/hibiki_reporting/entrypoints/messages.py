"""Domain records → ReportService protobuf messages."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp
from hibiki.reporting.v1 import report_service_pb2 as pb
from hibiki.sms.v1 import sms_results_pb2
from hibiki_runtime.events import timestamp_of

from hibiki_reporting.domain.calls import CallOutcome, CallRecord
from hibiki_reporting.domain.facts import MessageSnapshot, SmsStatus
from hibiki_reporting.domain.figures import DailyFigures
from hibiki_reporting.domain.sms import SmsRecord
from hibiki_reporting.domain.trace import TraceVerdict


def timestamp(at: datetime | None) -> Timestamp | None:
    return None if at is None else timestamp_of(at)


# Outcomes whose stored value (at most 20 characters) is not their enum name without the prefix.
_OUTCOME_NAMES = {CallOutcome.ABANDONED_IN_NUMBER_CAPTURE: "CALL_OUTCOME_ABANDONED_IN_NUMBER_CAPTURE"}
_OUTCOMES_BY_NAME = {name: outcome for outcome, name in _OUTCOME_NAMES.items()}


def outcome_message(outcome: CallOutcome) -> pb.CallOutcome.ValueType:
    return pb.CallOutcome.Value(_OUTCOME_NAMES.get(outcome, "CALL_OUTCOME_" + outcome.value.upper()))


def outcome_of(value: int) -> CallOutcome | None:
    """The domain outcome of a request filter; None for UNSPECIFIED (no filter)."""
    if value == pb.CALL_OUTCOME_UNSPECIFIED:
        return None
    name = pb.CallOutcome.Name(value)  # type: ignore[arg-type]
    return _OUTCOMES_BY_NAME.get(name) or CallOutcome(name.removeprefix("CALL_OUTCOME_").lower())


def reject_reason_message(reason: str) -> sms_results_pb2.RejectReason.ValueType:
    name = "REJECT_REASON_" + reason.upper()
    known = name in sms_results_pb2.RejectReason.DESCRIPTOR.values_by_name
    return sms_results_pb2.RejectReason.Value(name if known else "REJECT_REASON_UNSPECIFIED")


def daily_row(figures: DailyFigures) -> pb.DailyReportRow:
    return pb.DailyReportRow(
        date=figures.day.isoformat(),
        dialed_number=figures.dialed_number,
        calls=figures.calls,
        abandoned_calls=figures.abandoned_calls,
        abandonment_rate=figures.abandonment_rate,
        rejected_calls=figures.rejected_calls,
        platform_failures=figures.platform_failures,
        abandoned_in_number_capture=figures.abandoned_in_number_capture,
        sms_requested_to_captured_number=figures.sms_requested_to_captured_number,
        sms_requested=figures.sms_requested,
        sms_accepted=figures.sms_accepted,
        sms_delivered=figures.sms_delivered,
        sms_undelivered=figures.sms_undelivered,
        sms_rejected=[
            pb.RejectionCount(reason=reject_reason_message(reason), count=count)
            for reason, count in sorted(figures.sms_rejected.items())
        ],
        sms_failed=figures.sms_failed,
        final=figures.final,
        changes_after_finalization=[
            pb.FigureChange(figure=figure, change=change)
            for figure, change in figures.changes_after_finalization.items()
        ],
    )


def call_message(record: CallRecord) -> pb.CallRecord:
    abandonment = record.abandonment
    return pb.CallRecord(
        call_id=record.call_id,
        dialed_number=record.dialed_number,
        caller_number=record.caller_number,
        start_time=timestamp(record.start_time),
        end_time=timestamp(record.end_time),
        path=[
            pb.RouteStep(
                route_id=step.route_id,
                route_name=step.route_name,
                digits=step.digits,
                invalid_attempts=step.invalid_attempts,
                timeout_attempts=step.timeout_attempts,
            )
            for step in record.path
        ],
        outcome=outcome_message(record.outcome),
        abandoned_route_id=abandonment.route_id if abandonment else "",
        abandoned_stage=abandonment.stage.value if abandonment else "",
        end_reason=record.end_reason,
    )


def _snapshot(snapshot: MessageSnapshot | None) -> sms_results_pb2.MessageSnapshot | None:
    if snapshot is None:
        return None
    return sms_results_pb2.MessageSnapshot(
        box_number=snapshot.box_number,
        box_name=snapshot.box_name,
        message_text=snapshot.message_text,
        url=snapshot.url,
        box_revision=snapshot.box_revision,
        rendered_text=snapshot.rendered_text,
        segments=snapshot.segments,
    )


def sms_message(record: SmsRecord) -> pb.SmsRecord:
    carrier = "CARRIER_" + record.carrier.upper()
    if carrier not in sms_results_pb2.Carrier.DESCRIPTOR.values_by_name:
        carrier = "CARRIER_UNSPECIFIED"
    return pb.SmsRecord(
        request_id=record.request_id,
        call_id=record.call_id,
        recipient=record.recipient,
        snapshot=_snapshot(record.snapshot),
        carrier=sms_results_pb2.Carrier.Value(carrier),
        status=_status_message(record.status),
        reason=record.reason,
        request_time=timestamp(record.request_time),
        status_time=timestamp(record.status_time),
        clicks=record.clicks,
        first_click_time=timestamp(record.first_click_time),
        recipient_captured=record.recipient_captured,
    )


def _status_message(status: SmsStatus) -> pb.SmsStatus.ValueType:
    return pb.SmsStatus.Value("SMS_STATUS_" + status.value.upper())


def verdict_message(verdict: TraceVerdict) -> pb.TraceVerdict.ValueType:
    return pb.TraceVerdict.Value("TRACE_VERDICT_" + verdict.value.upper())

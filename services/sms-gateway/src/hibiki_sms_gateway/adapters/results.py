"""sms.results messages: one per outcome, with deterministic event ids "<request_id>:<outcome>"."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.message import Message
from hibiki.sms.v1 import sms_results_pb2 as pb
from hibiki_runtime.events import SMS_RESULTS, new_envelope

from hibiki_sms_gateway.domain.carrier import Carrier, parse_carrier
from hibiki_sms_gateway.domain.recipient import RejectReason
from hibiki_sms_gateway.domain.short_links import ShortLink
from hibiki_sms_gateway.domain.sms_message import SmsMessage

Outgoing = tuple[str, str, Message]

_CARRIERS = {
    Carrier.DOCOMO: pb.CARRIER_DOCOMO,
    Carrier.KDDI: pb.CARRIER_KDDI,
    Carrier.SOFTBANK: pb.CARRIER_SOFTBANK,
    Carrier.RAKUTEN: pb.CARRIER_RAKUTEN,
}


def _carrier(message: SmsMessage) -> pb.Carrier.ValueType:
    carrier = parse_carrier(message.carrier)
    return _CARRIERS[carrier] if carrier else pb.CARRIER_UNSPECIFIED


def _snapshot(message: SmsMessage) -> pb.MessageSnapshot:
    s = message.snapshot
    return pb.MessageSnapshot(
        box_number=s.box_number,
        box_name=s.box_name,
        message_text=s.message_text,
        url=s.url,
        box_revision=s.box_revision,
        rendered_text=s.rendered_text,
        segments=s.segments,
    )


def _result(
    message: SmsMessage | ShortLink, outcome: str, field: str, body: Message, cause: str, now: datetime
) -> Outgoing:
    result = pb.SmsResult(request_id=message.request_id)
    getattr(result, field).CopyFrom(body)
    result.envelope.CopyFrom(
        new_envelope(
            message.tenant_id,
            body,
            event_id=f"{message.request_id}:{outcome}",
            occurred_at=now,
            causation_id=cause,
        )
    )
    return SMS_RESULTS, message.request_id, result


def rejected(message: SmsMessage, reason: RejectReason, detail: str, cause: str, now: datetime) -> Outgoing:
    body = pb.SmsRejected(
        reason=pb.RejectReason.Value(f"REJECT_REASON_{reason.name}"),
        detail=detail,
        snapshot=_snapshot(message),
    )
    return _result(message, "rejected", "sms_rejected", body, cause, now)


def accepted(message: SmsMessage, ids: list[str], cause: str, now: datetime) -> Outgoing:
    body = pb.SmsAccepted(
        carrier=_carrier(message), carrier_message_ids=ids, snapshot=_snapshot(message), reason="accepted"
    )
    return _result(message, "accepted", "sms_accepted", body, cause, now)


def failed(
    message: SmsMessage, reason: str, detail: str, attempts: int, cause: str, now: datetime
) -> Outgoing:
    body = pb.SmsFailed(
        reason=reason,
        detail=detail,
        carrier=_carrier(message),
        attempts=attempts,
        snapshot=_snapshot(message),
    )
    return _result(message, "failed", "sms_failed", body, cause, now)


def delivered(message: SmsMessage, ids: list[str], state: str, now: datetime) -> Outgoing:
    body = pb.SmsDelivered(
        carrier=_carrier(message), carrier_message_ids=ids, snapshot=_snapshot(message), reason=state
    )
    return _result(message, "delivered", "sms_delivered", body, f"{message.request_id}:accepted", now)


def undelivered(message: SmsMessage, ids: list[str], state: str, error_code: str, now: datetime) -> Outgoing:
    body = pb.SmsUndelivered(
        carrier=_carrier(message),
        carrier_message_ids=ids,
        snapshot=_snapshot(message),
        reason=state,
        error_code=error_code,
    )
    return _result(message, "undelivered", "sms_undelivered", body, f"{message.request_id}:accepted", now)


def link_clicked(link: ShortLink, click_number: int, now: datetime) -> Outgoing:
    """The n-th counted open of a message's short link; its event id is unique per open."""
    body = pb.SmsLinkClicked(click_number=click_number, url=link.target_url, short_link=link.short_url)
    cause = f"{link.request_id}:accepted"
    return _result(link, f"clicked:{click_number}", "sms_link_clicked", body, cause, now)

"""The sms.requests edge of sms-gateway: a contract-checked record becomes a SendSms command."""

from __future__ import annotations

from hibiki.sms.v1 import sms_requests_pb2
from hibiki_runtime.consumer import ConsumerEdge
from hibiki_runtime.events import SMS_REQUESTS, DecodedEvent

from hibiki_sms_gateway.domain.commands import SendSms


def send_sms(event: DecodedEvent) -> SendSms:
    message = event.message
    assert isinstance(message, sms_requests_pb2.SmsRequest)
    body = message.sms_requested
    return SendSms(
        request_id=message.request_id,
        call_id=body.call_id,
        box_number=body.box_number,
        recipient=body.recipient,
        dialed_number=body.dialed_number,
        route_id=body.route_id,
        recipient_captured=body.recipient_captured,
    )


TRANSLATORS = {SMS_REQUESTS: send_sms}
EDGE = ConsumerEdge(TRANSLATORS)

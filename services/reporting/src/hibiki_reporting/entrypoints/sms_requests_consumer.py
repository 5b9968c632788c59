"""The sms.requests edge of reporting: a request is a fact of its SMS, and tells its call an SMS was sent."""

from __future__ import annotations

from hibiki.sms.v1 import sms_requests_pb2
from hibiki_runtime.events import SMS_REQUESTS, DecodedEvent

from hibiki_reporting.adapters.events import call_fact, sms_fact
from hibiki_reporting.domain.observations import Observation, RecordKind, Touch


def observation(event: DecodedEvent) -> Observation:
    message = event.message
    assert isinstance(message, sms_requests_pb2.SmsRequest)
    sms = Touch(RecordKind.SMS, message.request_id)
    call_id = message.sms_requested.call_id
    if not call_id:
        return Observation((sms,), sms_fact=sms_fact(SMS_REQUESTS, message))
    return Observation(
        (Touch(RecordKind.CALL, call_id), sms),
        call_fact=call_fact(SMS_REQUESTS, message),
        sms_fact=sms_fact(SMS_REQUESTS, message),
    )


TRANSLATORS = {SMS_REQUESTS: observation}
